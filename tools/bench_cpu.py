#!/usr/bin/env python3
"""CPU inference img/s of the zoo with each scan backend, beside timm's DeiT-Ti, and the quick start's time.

    python tools/bench_cpu.py [--backends reference cpu] [--batch 4] [--img-size 224] [--iters 5]
                              [--quickstart]

Each model is built once (random weights, eval mode) and timed under ``torch.inference_mode`` with
every backend in turn (``VSSM_SCAN_BACKEND``, which the models' ``backend=None`` calls read), so a
drift in the machine's load touches all backends alike; DeiT-Ti has no scan and is timed in every
pass as the yardstick. img/s is batch / median seconds per batch over ``--iters`` timed batches after
``--warmup`` untimed ones. ``--quickstart`` also times the README's quick start
(``tools/train.py --config configs/quickstart.yaml``) end to end, per backend, in a child process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

MODELS = ("vim_tiny_patch16_224", "vmamba_tiny_s1l8", "simba_s", "deit_tiny_patch16_224")
BACKENDS = ("reference", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def infer_img_per_s(model: torch.nn.Module, x: torch.Tensor, warmup: int, iters: int) -> float:
    """Median img/s of ``model(x)`` under inference_mode."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times)


def quickstart_seconds(backend: str) -> tuple[float, float | None]:
    """Wall seconds of the README quick start with `backend`, and its final val top-1 (None if not found)."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, VSSM_SCAN_BACKEND=backend)
        cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
               os.path.join(ROOT, "configs", "quickstart.yaml"), "--output", out]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        top1 = None
        path = os.path.join(out, "summary.json")
        if os.path.exists(path):
            with open(path) as f:
                summary = json.load(f)
            top1 = next((summary[k] for k in ("best_top1", "top1", "val_top1") if k in summary), None)
        return seconds, top1


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=("reference", "cpu", "triton"))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--quickstart", action="store_true", help="also time the README quick start per backend")
    args = p.parse_args(argv)

    import timm

    import vssm  # noqa: F401  (registers the families with timm)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} at {args.img_size}, "
          f"inference_mode, median of {args.iters}; load average at start {load:.2f}")
    saved = os.environ.get("VSSM_SCAN_BACKEND")
    x = torch.randn(args.batch, 3, args.img_size, args.img_size)
    rates: dict[str, dict[str, float]] = {}
    try:
        for name in args.models:
            torch.manual_seed(0)
            model = timm.create_model(name).eval()
            rates[name] = {}
            for backend in args.backends:
                os.environ["VSSM_SCAN_BACKEND"] = backend
                rates[name][backend] = infer_img_per_s(model, x, args.warmup, args.iters)
            del model
        quick = {}
        if args.quickstart:
            for backend in args.backends:
                quick[backend] = quickstart_seconds(backend)
    finally:
        if saved is None:
            os.environ.pop("VSSM_SCAN_BACKEND", None)
        else:
            os.environ["VSSM_SCAN_BACKEND"] = saved

    base = args.backends[0]
    deit = "deit_tiny_patch16_224"
    head = f"| model | {' | '.join(f'{b} img/s' for b in args.backends)} |"
    extra = f" {args.backends[-1]} / {base} |" if len(args.backends) > 1 else ""
    extra += f" {args.backends[-1]} / DeiT-Ti |" if deit in rates else ""
    print(head + extra)
    print("|---" * (head.count("|") - 1 + extra.count("|")) + "|")
    for name, r in rates.items():
        line = f"| {name} | " + " | ".join(f"{r[b]:.2f}" for b in args.backends) + " |"
        if len(args.backends) > 1:
            line += f" {r[args.backends[-1]] / r[base]:.2f}x |"
        if deit in rates:
            line += f" {r[args.backends[-1]] / rates[deit][args.backends[-1]]:.2f} |"
        print(line)
    for backend, (seconds, top1) in quick.items():
        print(f"quick start ({backend}): {seconds:.1f} s" + (f", val top-1 {top1}" if top1 is not None else ""))
    return {"img_per_s": rates, "quickstart": quick}


if __name__ == "__main__":
    main()
