"""Inference and training throughput (img/s) and peak memory of timm models, side by side.
``tools/benchmark.py`` is its command line.

Models are given one per ``--model NAME [KEY=VALUE ...]`` (each with its own create_model kwargs), or as
bare names with ``--models A B``; ``--model-kwargs`` applies to a single model only, so one model's kwargs
never reach another.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import json
import os
import statistics
import tempfile
import time

import torch
import torch.nn as nn

from vssm.train.build import COMPILE_MODES, compiled, create_model
from vssm.train.config import KwargsAction

__all__ = ["FIELDS", "MODES", "PHASES", "PRECISIONS", "bench_one", "build_parser", "main", "model_specs",
           "phase_breakdown", "plot", "plot_phases", "run", "write_csv"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("infer", "train")
PHASES = ("fwd", "bwd", "opt")  # a training step's forward, backward, optimizer step (inference: the forward)
PHASE_FIELDS = ("launches",) + tuple(f"{p}_{k}" for p in PHASES for k in ("host_ms", "gpu_ms", "idle_ms"))
FIELDS = ("model", "model_kwargs", "mode", "img_size", "batch_size", "precision", "device", "img_per_s",
          "ms_per_batch", "host_ms", "peak_mem_gib", "params_m", "status") + PHASE_FIELDS



def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", dest="model_specs", action="append", nargs="+", default=[], metavar="NAME [KEY=VALUE",
                   help="a timm model and its own create_model kwargs (repeat for more models): "
                        "--model vim_tiny_patch16_224 depth=2 --model resnet18")
    p.add_argument("--models", nargs="+", default=[], help="timm model names, without kwargs")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KwargsAction, metavar="KEY=VALUE",
                   help="create_model kwargs of the one model given (with several, use --model NAME KEY=VALUE)")
    p.add_argument("--img-sizes", nargs="+", type=int, default=[224], help="(default: 224)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64], help="(default: 64)")
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=list(PRECISIONS), help="(default: fp32)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES), help="(default: infer train)")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first (default: 10)")
    p.add_argument("--iters", type=int, default=30, help="timed iterations, median reported (default: 30)")
    p.add_argument("--num-classes", type=int, default=1000, help="(default: 1000)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES,
                   help="torch.compile each model in this mode (bare flag: default); 'reduce-overhead' replays "
                        "CUDA graphs, the fast path of launch-bound runs (small batches, high resolution)")
    p.add_argument("--phases", action="store_true",
                   help="after the timed steps, profile one and report per phase (forward, backward, optimizer) the "
                        "host's ms, the GPU's ms of the kernels the phase launched and the GPU's idle ms inside them, "
                        "and the kernels launched per step: which of host and GPU bounds each phase")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: auto)")
    p.add_argument("--out", default="runs/benchmark", help="folder for benchmark.csv and .png (default: runs/benchmark)")
    return p


def _literal(text: str):
    """A KEY=VALUE value as timm's ParseKwargs reads it: a Python literal, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def model_specs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(name, kwargs) of every model the command line names, in order."""
    specs = []
    for name, *items in args.model_specs:
        bad = [i for i in items if "=" not in i]
        if "=" in name or bad:
            raise ValueError(f"--model {name} {' '.join(items)}: expected NAME [KEY=VALUE ...]")
        specs.append((name, {k: _literal(v) for k, v in (i.split("=", 1) for i in items)}))
    specs += [(name, {}) for name in args.models]
    if not specs:
        raise ValueError("give models: --model NAME [KEY=VALUE ...] (repeatable) or --models NAME [NAME ...]")
    if args.model_kwargs:
        if len(specs) > 1:
            raise ValueError("--model-kwargs would apply to every one of several models; give each its own: "
                             "--model NAME KEY=VALUE ... --model NAME2 ...")
        specs = [(specs[0][0], {**args.model_kwargs, **specs[0][1]})]
    return specs


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
              warmup: int, iters: int, channels_last: bool = False, phases: bool = False) -> dict:
    """Median ms per batch, img/s and (CUDA) peak GiB of one configuration, and the median host time of a step:
    ``host_ms`` is how long the step took to return, before waiting for the device. On a GPU, host_ms well
    below ms_per_batch means the GPU bounds the step; host_ms close to it means the host (Python, launches)
    does, where CUDA graphs (``--compile reduce-overhead``) pay. A step of more than ~1000 kernel launches
    can also wait for a full launch queue, which reads as host time.

    ``phases``: one more step under torch.profiler, split per phase (`phase_breakdown`; the ``PHASE_FIELDS``).
    On the CPU only the host times are filled (there is no device to wait for)."""
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

    annotate = [False]  # phase ranges only in the profiled step (the timed ones carry none)

    def phase(name):
        return torch.profiler.record_function(f"phase:{name}") if annotate[0] else contextlib.nullcontext()

    if mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), ctx(), phase("fwd"):
                model(x)
    else:
        from timm.utils import NativeScaler

        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        scaler = NativeScaler(device.type) if precision == "fp16" else None

        def step():
            with ctx(), phase("fwd"):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                with phase("bwd"):  # the scaler runs the backward and the optimizer step in one call
                    scaler(loss, opt)
            else:
                with phase("bwd"):
                    loss.backward()
                with phase("opt"):
                    opt.step()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step()
    times, host = [], []
    for _ in range(iters):
        start()
        t0 = time.perf_counter()
        step()
        host.append((time.perf_counter() - t0) * 1e3)
        times.append(stop())
    ms = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    row = {"ms_per_batch": ms, "img_per_s": batch_size * 1e3 / ms, "host_ms": statistics.median(host),
           "peak_mem_gib": peak}
    if phases:
        annotate[0] = True
        try:
            row.update(_profiled_phases(step, device))
        finally:
            annotate[0] = False
    return row


def _profiled_phases(step, device: torch.device) -> dict:
    """One step under torch.profiler (CPU, and CUDA where the step runs there), split by `phase_breakdown`."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as f:
            events = json.load(f)["traceEvents"]
    res = phase_breakdown(events)
    if device.type != "cuda":  # no device: nothing launched, nothing to wait for
        res = {k: (None if k == "launches" or k.endswith(("_gpu_ms", "_idle_ms")) else v) for k, v in res.items()}
    return res


_KERNEL_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
_LAUNCH_CATS = ("cuda_runtime", "cuda_driver")


def phase_breakdown(events: list[dict]) -> dict:
    """Per phase of one profiled step, from its Chrome-trace events (``torch.profiler``'s `export_chrome_trace`):
    the phases are the CPU ranges ``phase:<name>`` (`PHASES`); each GPU kernel, copy or memset belongs to the phase
    whose range was open when the host launched it (matched by correlation id). For each phase: ``<p>_host_ms`` (the
    range's length), ``<p>_gpu_ms`` (the union of its kernels' intervals) and ``<p>_idle_ms`` (the time between
    its first kernel's start and last kernel's end that no kernel of it covers: where the GPU waited for the host
    or for another phase's work); ``launches``: kernels of the step. A phase that did not run reads None; one that
    launched nothing, 0 GPU and idle ms."""
    ranges = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("ph") == "X" and e.get("cat") == "user_annotation" and name.startswith("phase:"):
            ranges.setdefault(name[len("phase:"):], (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))))
    launched = {}
    for e in events:
        corr = (e.get("args") or {}).get("correlation")
        if e.get("ph") == "X" and e.get("cat") in _LAUNCH_CATS and corr is not None:
            launched[corr] = float(e["ts"])
    per_phase: dict[str, list] = {p: [] for p in ranges}
    n = 0
    for e in events:
        corr = (e.get("args") or {}).get("correlation")
        if e.get("ph") != "X" or e.get("cat") not in _KERNEL_CATS:
            continue
        n += 1
        at = launched.get(corr)
        for p, (t0, t1) in ranges.items():
            if at is not None and t0 <= at <= t1:
                per_phase[p].append((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))))
                break
    res: dict = {"launches": n}
    for p in PHASES:
        if p not in ranges:
            res.update({f"{p}_host_ms": None, f"{p}_gpu_ms": None, f"{p}_idle_ms": None})
            continue
        t0, t1 = ranges[p]
        busy, span_end, start = 0.0, None, None
        for a, b in sorted(per_phase[p]):
            if span_end is None or a > span_end:  # a new stretch of the union
                busy += b - a
                start = a if start is None else start
                span_end = b
            elif b > span_end:
                busy += b - span_end
                span_end = b
        span = (span_end - start) if start is not None else 0.0
        res.update({f"{p}_host_ms": (t1 - t0) / 1e3, f"{p}_gpu_ms": busy / 1e3, f"{p}_idle_ms": (span - busy) / 1e3})
    return res


def _pairs(sizes: list[int], batches: list[int]) -> list[tuple[int, int]]:
    if len(sizes) == len(batches):
        return list(zip(sizes, batches))
    return [(s, b) for s in sizes for b in batches]


def _label(name: str, kwargs: dict) -> str:
    return name + (f" ({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else "")


def run(args: argparse.Namespace) -> list[dict]:
    """Every model x (size, batch) x precision x mode; one row each (status ok, oom or the error)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is available")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    rows = []
    for name, kwargs in model_specs(args):
        shown_kw = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        for img_size, batch_size in _pairs(args.img_sizes, args.batch_sizes):
            for precision in args.precisions:
                for mode in args.modes:
                    row = {"model": name, "model_kwargs": shown_kw, "mode": mode, "img_size": img_size,
                           "batch_size": batch_size, "precision": precision, "device": device.type}
                    model = None
                    try:
                        model = create_model(name, img_size, num_classes=args.num_classes, **kwargs).to(device)
                        if args.channels_last:
                            model.to(memory_format=torch.channels_last)
                        row["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
                        runner = compiled(model, args.compile)
                        row.update(bench_one(runner, mode, img_size, batch_size, precision, device, args.warmup,
                                             args.iters, args.channels_last, phases=args.phases))
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
                    shown = (f"{row['img_per_s']:9.1f} img/s  {row['ms_per_batch']:8.2f} ms/batch "
                             f"(host {row['host_ms']:.2f})"
                             if row["status"] == "ok" else "  out of memory" if row["status"] == "oom" else f"  {row['status']}")
                    mem = f"  {row['peak_mem_gib']:.2f} GiB" if row.get("peak_mem_gib") is not None else ""
                    print(f"{_label(name, kwargs):40s} {mode:5s} {img_size:5d}px bs {batch_size:4d} {precision:4s} "
                          f"{shown}{mem}", flush=True)
                    if row["status"] == "ok" and args.phases:
                        print("    " + _phases_line(row), flush=True)
    return rows


def _phases_line(row: dict) -> str:
    """The phases of a row as one line: host ms, and with a GPU its ms and idle ms, per phase; kernels per step."""
    parts = []
    for p in PHASES:
        host = row.get(f"{p}_host_ms")
        if host is None:
            continue
        gpu, idle = row.get(f"{p}_gpu_ms"), row.get(f"{p}_idle_ms")
        parts.append(f"{p} host {host:.2f} ms" + (f", GPU {gpu:.2f} ms (idle {idle:.2f})" if gpu is not None else ""))
    launches = row.get("launches")
    return " | ".join(parts) + (f" | {launches} kernels" if launches is not None else "")


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

    def key(r):
        return r["model"] + (f" ({r['model_kwargs']})" if r.get("model_kwargs") else "")

    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    models = list(dict.fromkeys(key(r) for r in rows))
    for ax, mode in zip(axes[0], modes):
        groups = list(dict.fromkeys((r["img_size"], r["batch_size"], r["precision"]) for r in rows if r["mode"] == mode))
        width = 0.8 / max(len(models), 1)
        for j, name in enumerate(models):
            vals = []
            for g in groups:
                hit = [r for r in rows if r["mode"] == mode and key(r) == name
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


def plot_phases(rows: list[dict], path: str) -> bool:
    """One bar group per profiled row (model, mode, size, batch, precision): per phase the host's ms next to the GPU's
    ms of the kernels it launched, the GPU's idle ms stacked on them (where host bars stand above GPU bars, the host
    bounds the phase). False, and nothing written, where no row has phases."""
    rows = [r for r in rows if r.get("status") == "ok" and r.get("fwd_host_ms") is not None]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(rows)), 4))
    width = 0.8 / (2 * len(PHASES))
    colors = {"fwd": "tab:blue", "bwd": "tab:orange", "opt": "tab:green"}
    for i, r in enumerate(rows):
        for j, p in enumerate(PHASES):
            host, gpu, idle = r.get(f"{p}_host_ms"), r.get(f"{p}_gpu_ms"), r.get(f"{p}_idle_ms")
            if host is None:
                continue
            x = i + (2 * j) * width
            ax.bar(x, host, width, color=colors[p], alpha=0.45, label=f"{p} host" if i == 0 else None)
            if gpu is not None:
                ax.bar(x + width, gpu, width, color=colors[p], label=f"{p} GPU" if i == 0 else None)
                ax.bar(x + width, idle, width, bottom=gpu, color="lightgray", hatch="//",
                       label="GPU idle" if i == 0 and j == 0 else None)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([f"{r['model']}\n{r['mode']} {r['img_size']}px bs {r['batch_size']} {r['precision']}"
                        + (f"\n{r['launches']} kernels" if r.get("launches") is not None else "") for r in rows],
                       fontsize=7)
    ax.set_ylabel("ms per step")
    ax.set_title(f"one profiled step per row, by phase ({rows[0]['device']})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    args = build_parser(description).parse_args(argv)
    rows = run(args)
    csv_path, png_path = os.path.join(args.out, "benchmark.csv"), os.path.join(args.out, "benchmark.png")
    write_csv(rows, csv_path)
    plot(rows, png_path)
    print(f"results: {csv_path}\nplot:    {png_path}")
    phases_path = os.path.join(args.out, "benchmark_phases.png")
    if args.phases and plot_phases(rows, phases_path):
        print(f"phases:  {phases_path}")
    return 0
