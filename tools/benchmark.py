#!/usr/bin/env python3
"""Inference and training throughput (img/s) and peak memory of timm models, side by side.

    python tools/benchmark.py --models vim_tiny_patch16_224 deit_tiny_patch16_224 --img-sizes 224 512 \
        --batch-sizes 128 32 --precisions bf16 --modes infer train --out runs/bench

Every combination of model x image size x batch size x precision x mode is timed: ``--warmup``
untimed iterations, then ``--iters`` timed ones; the median iteration time gives img/s. On CUDA each
iteration is timed with CUDA events and peak memory is ``torch.cuda.max_memory_allocated`` per
combination; on CPU iterations are timed with ``perf_counter`` and peak memory is not reported.
Inference is a forward under ``torch.inference_mode``; training is forward + backward + AdamW step
(fp16 with a GradScaler). ``--batch-sizes`` pairs with ``--img-sizes`` when both have the same length
(e.g. 128 at 224, 32 at 512), otherwise every size runs every batch size. Results go to
``<out>/benchmark.csv`` and ``<out>/benchmark.png``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import create_model, parse_model_kwargs, run_main  # noqa: E402

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("infer", "train")
FIELDS = ("model", "mode", "img_size", "batch_size", "precision", "device", "img_per_s", "ms_per_batch",
          "peak_mem_gib", "params_m", "status")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="timm model names")
    p.add_argument("--model-kwargs", nargs="*", default=None, metavar="KEY=VALUE", help="extra create_model kwargs")
    p.add_argument("--img-sizes", nargs="+", type=int, default=[224])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64])
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=list(PRECISIONS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first (compilation, autotuning)")
    p.add_argument("--iters", type=int, default=30, help="timed iterations (median reported)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile each model")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", default="runs/benchmark", help="folder for benchmark.csv and benchmark.png")
    return p


def _timer(device: torch.device):
    """(start, stop) pair: stop() returns the milliseconds since start()."""
    if device.type == "cuda":
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def start():
            begin.record()

        def stop():
            end.record()
            end.synchronize()
            return begin.elapsed_time(end)

        return start, stop
    box = [0.0]

    def start():
        box[0] = time.perf_counter()

    def stop():
        return (time.perf_counter() - box[0]) * 1e3

    return start, stop


def bench_one(model: nn.Module, mode: str, img_size: int, batch_size: int, precision: str, device: torch.device,
              warmup: int, iters: int, channels_last: bool = False) -> dict:
    """Median ms per batch, img/s and (CUDA) peak GiB of one configuration."""
    if mode not in MODES:
        raise ValueError(f"bench_one: `mode` must be one of {MODES}, got {mode!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"bench_one: `precision` must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if warmup < 0 or iters < 1:
        raise ValueError(f"bench_one: need `warmup` >= 0 and `iters` >= 1, got {warmup} and {iters}")
    dtype = PRECISIONS[precision]
    x = torch.randn(batch_size, 3, img_size, img_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    start, stop = _timer(device)

    def ctx():
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(device.type, enabled=False)

    if mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), ctx():
                model(x)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

        def step():
            with ctx():
                loss = nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start()
        step()
        times.append(stop())
    ms = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"ms_per_batch": ms, "img_per_s": batch_size * 1e3 / ms, "peak_mem_gib": peak}


def _pairs(sizes: list[int], batches: list[int]) -> list[tuple[int, int]]:
    if len(sizes) == len(batches):
        return list(zip(sizes, batches))
    return [(s, b) for s in sizes for b in batches]


def run(args: argparse.Namespace) -> list[dict]:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is available")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    kwargs = parse_model_kwargs(args.model_kwargs)
    rows = []
    for name in args.models:
        for img_size, batch_size in _pairs(args.img_sizes, args.batch_sizes):
            for precision in args.precisions:
                for mode in args.modes:
                    row = {"model": name, "mode": mode, "img_size": img_size, "batch_size": batch_size,
                           "precision": precision, "device": device.type}
                    model = None
                    try:
                        model = create_model(name, img_size, num_classes=args.num_classes, **kwargs).to(device)
                        if args.channels_last:
                            model.to(memory_format=torch.channels_last)
                        row["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
                        runner = torch.compile(model) if args.compile else model
                        row.update(bench_one(runner, mode, img_size, batch_size, precision, device, args.warmup,
                                             args.iters, args.channels_last))
                        row["status"] = "ok"
                    except torch.cuda.OutOfMemoryError:
                        row["status"] = "oom"
                    except (ValueError, TypeError, RuntimeError) as e:
                        # one combination a model rejects (input size, kwargs) must not lose the whole sweep
                        row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    del model
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    rows.append(row)
                    shown = (f"{row['img_per_s']:9.1f} img/s  {row['ms_per_batch']:8.2f} ms/batch"
                             if row["status"] == "ok" else "  out of memory" if row["status"] == "oom" else f"  {row['status']}")
                    mem = f"  {row['peak_mem_gib']:.2f} GiB" if row.get("peak_mem_gib") is not None else ""
                    print(f"{name:40s} {mode:5s} {img_size:5d}px bs {batch_size:4d} {precision:4s} {shown}{mem}",
                          flush=True)
    return rows


def write_csv(rows: list[dict], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def plot(rows: list[dict], path: str) -> None:
    """One panel per mode: grouped bars of img/s, a group per (size, batch, precision), a bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    models = list(dict.fromkeys(r["model"] for r in rows))
    for ax, mode in zip(axes[0], modes):
        groups = list(dict.fromkeys((r["img_size"], r["batch_size"], r["precision"]) for r in rows if r["mode"] == mode))
        width = 0.8 / max(len(models), 1)
        for j, name in enumerate(models):
            vals = []
            for g in groups:
                hit = [r for r in rows if r["mode"] == mode and r["model"] == name
                       and (r["img_size"], r["batch_size"], r["precision"]) == g and r["status"] == "ok"]
                vals.append(hit[0]["img_per_s"] if hit else 0.0)
            bars = ax.bar([i + j * width for i in range(len(groups))], vals, width, label=name)
            ax.bar_label(bars, labels=[f"{v:.0f}" if v >= 10 else f"{v:.2g}" for v in vals], fontsize=7)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
        ax.set_xticklabels([f"{s}px\nbs {b}\n{p}" for s, b, p in groups])
        ax.set_ylabel("img/s")
        ax.set_title(f"{mode} ({rows[0]['device']})")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = run(args)
    csv_path, png_path = os.path.join(args.out, "benchmark.csv"), os.path.join(args.out, "benchmark.png")
    write_csv(rows, csv_path)
    plot(rows, png_path)
    print(f"results: {csv_path}\nplot:    {png_path}")
    return 0


if __name__ == "__main__":
    run_main(main)
