"""Parameters and GFLOPs of timm models with ``vssm.flops`` (fvcore and vssm's op handles), and the vssm zoo
next to the papers' figures. ``tools/flops.py`` is its command line.

``--all`` compares like with like: VMamba's figures are fvcore counts with the same scan handle, so the
full count is compared; SiMBA's come from a module-hook counter that does not see functional ops, so
the count of nn.Module layers (Linear, Conv, norms) is compared, and the full count is printed beside it.
Each model is built once and counted once, at batch 1. Counting needs shapes, not values: the models are
built without running their initialisers (`build_uninitialised`: parameters zero-filled); ``--all --jobs N``
counts on N worker processes forked after the imports (each with its share of the CPU threads).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from vssm.train.build import create_model
from vssm.train.config import KwargsAction

__all__ = ["PAPER", "build_parser", "build_uninitialised", "main", "measure", "run", "zoo_names"]

# The papers' figures at 224x224, 1000 classes (shared/REFERENCE.md). None: the paper gives none.
# Vim's paper gives parameters only (rounded to 1M); the VMamba table is the official README's.
# "convention": how the paper counted, so the comparison is like for like:
#   fvcore  - vssm.flops' full count (VMamba's own fvcore count with its scan handle);
#   modules - only nn.Module layers (Linear, Conv, norms), as the ptflops-style counter SiMBA's code imports
#             (util/flops_counter.get_model_complexity_info): functional ops (the selective scan, EinFFT's
#             einsum and FFTs) are invisible to it. Our full count is shown beside it. With it, SiMBA-B and -L
#             land on the figures of the paper's revised version (4.2G, 7.6G; the first version said 5.2G, 9.6G).
PAPER: dict[str, dict] = {
    "vim_tiny_patch16_224": {"params_m": 7.0, "gflops": None, "top1": 76.1, "source": "Vim paper (7M)"},
    "vim_small_patch16_224": {"params_m": 26.0, "gflops": None, "top1": 80.5, "source": "Vim paper (26M)"},
    "vim_base_patch16_224": {"params_m": 98.0, "gflops": None, "top1": 81.9, "source": "Vim paper (98M)"},
    "vim_tiny_patch16_stride8_224": {"params_m": 7.0, "gflops": None, "top1": 78.3, "source": "Vim paper (Ti†)"},
    "vim_small_patch16_stride8_224": {"params_m": 26.0, "gflops": None, "top1": 81.6, "source": "Vim paper (S†)"},
    "vim_base_patch16_stride8_224": {"params_m": 98.0, "gflops": None, "top1": 83.2, "source": "Vim paper (B†)"},
    "vmamba_tiny_s1l8": {"params_m": 30.0, "gflops": 4.9, "top1": 82.6, "source": "VMamba README"},
    "vmamba_small_s1l20": {"params_m": 49.0, "gflops": 8.6, "top1": 83.3, "source": "VMamba README"},
    "vmamba_base_s1l20": {"params_m": 87.0, "gflops": 15.2, "top1": 83.8, "source": "VMamba README"},
    "vmamba_tiny_s2l5": {"params_m": 31.0, "gflops": 4.9, "top1": 82.5, "source": "VMamba README"},
    "vmamba_small_s2l15": {"params_m": 50.0, "gflops": 8.7, "top1": 83.6, "source": "VMamba README"},
    "vmamba_base_s2l15": {"params_m": 89.0, "gflops": 15.4, "top1": 83.9, "source": "VMamba README"},
    "vanilla_vmamba_tiny": {"params_m": 23.0, "gflops": 5.6, "top1": 82.2, "source": "VMamba README (v0)"},
    "vanilla_vmamba_small": {"params_m": 44.0, "gflops": 11.2, "top1": 83.5, "source": "VMamba README (v0)"},
    "vanilla_vmamba_base": {"params_m": 76.0, "gflops": 18.0, "top1": 83.7, "source": "VMamba README (v0)"},
    "simba_s": {"convention": "modules", "params_m": 15.3, "gflops": 2.4, "top1": 81.7, "source": "SiMBA paper (EinFFT)"},
    "simba_b": {"convention": "modules", "params_m": 22.8, "gflops": 4.2, "top1": 83.5, "source": "SiMBA paper v2 (EinFFT; v1: 5.2G)"},
    "simba_l": {"convention": "modules", "params_m": 36.6, "gflops": 7.6, "top1": 84.4, "source": "SiMBA paper v2 (EinFFT; v1: 9.6G)"},
    "simba_s_mlp": {"convention": "modules", "params_m": 26.5, "gflops": 5.0, "top1": 84.0, "source": "SiMBA paper (MLP)"},
    "simba_b_mlp": {"convention": "modules", "params_m": 40.0, "gflops": 9.0, "top1": 84.7, "source": "SiMBA paper (MLP)"},
    "simba_l_mlp": {"convention": "modules", "params_m": None, "gflops": None, "top1": None, "source": "not in the paper"},
    # MambaVision's table counts without the attention matmuls (ours: +0.9% to +4.2% with them)
    "mambavision_t": {"params_m": 31.8, "gflops": 4.4, "top1": 82.3, "source": "MambaVision paper"},
    "mambavision_t2": {"params_m": 35.1, "gflops": 5.1, "top1": 82.7, "source": "MambaVision paper"},
    "mambavision_s": {"params_m": 50.1, "gflops": 7.5, "top1": 83.3, "source": "MambaVision paper"},
    "mambavision_b": {"params_m": 97.7, "gflops": 15.0, "top1": 84.2, "source": "MambaVision paper"},
    "mambavision_l": {"params_m": 227.9, "gflops": 34.9, "top1": 85.0, "source": "MambaVision paper"},
    "mambavision_l2": {"params_m": 241.5, "gflops": 37.5, "top1": 85.3, "source": "MambaVision paper"},
}


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", nargs="+", default=None, help="timm model name(s)")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KwargsAction, metavar="KEY=VALUE",
                   help="extra create_model kwargs (for every model named)")
    p.add_argument("--img-size", nargs="+", type=int, default=None, help="input side(s) (default: pretrained_cfg)")
    p.add_argument("--num-classes", type=int, default=1000, help="(default: 1000)")
    p.add_argument("--all", action="store_true", help="every vssm model at 224 next to the paper figures")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--by-operator", action="store_true", help="also list FLOPs per operator")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes for --all, forked after the imports (default: 1, in this process)")
    return p


class _SkipParameterInit(TorchFunctionMode):
    """While a model is built: in-place writes to an ``nn.Parameter`` (the initialisers' ``uniform_``,
    ``normal_``, ``erfinv_``, ``copy_`` ...) do nothing. Buffers (index tables, fixed embeddings) are still
    computed, so a forward pass runs as with a trained model; only the parameters' values are left out."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__") and args and isinstance(args[0], nn.Parameter):
            return args[0]
        return func(*args, **(kwargs or {}))


def build_uninitialised(name: str, img_size: int | None = None, **kwargs) -> nn.Module:
    """``create_model`` without the parameter initialisers (seconds saved on the large models), the
    parameters then zero-filled (defined values in the forward). For counting, not training."""
    with _SkipParameterInit():
        model = create_model(name, img_size, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


# fvcore operators a module-hook counter sees: the layers that are nn.Modules
MODULE_OPS = ("linear", "conv", "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm",
              "adaptive_avg_pool2d", "upsample_nearest2d", "upsample_bilinear2d")


def _diff(ours: float, paper: float | None) -> float | None:
    return None if paper is None else 100.0 * (ours - paper) / paper


def measure(name: str, img_size: int | None, num_classes: int = 1000, kwargs: dict | None = None) -> dict:
    """Params and FLOPs of one model at one size (default: its pretrained_cfg input size), built once
    without initialisers and counted once at batch 1."""
    from vssm.flops import count_flops

    kw = dict(kwargs or {})
    model = build_uninitialised(name, img_size, num_classes=num_classes, **kw)
    given = kw.get("img_size")
    if img_size is not None and given is not None and given != img_size:
        raise ValueError(f"--img-size {img_size} and --model-kwargs img_size={given} disagree: give one")
    size = img_size or (given if isinstance(given, int) else None) or model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    chans = kw.get("in_chans") or model.pretrained_cfg.get("input_size", (3, 224, 224))[0]
    res = count_flops(model, (1, chans, size, size))
    modules = sum(v for k, v in res["by_operator"].items() if k in MODULE_OPS)
    return {"model": name, "img_size": size, "params": res["params"], "params_m": res["params"] / 1e6,
            "gflops": res["gflops"], "gflops_modules": modules / 1e9, "by_operator": res["by_operator"],
            "unsupported": res["unsupported"]}


def zoo_names() -> list[str]:
    """The registered vssm models (their timm names, without the official-name aliases)."""
    import timm

    import vssm  # noqa: F401

    names = []
    for module in ("vim", "vmamba", "simba", "mambavision"):
        names += [n for n in timm.list_models(module=module) if "bimambav2" not in n and not n.startswith("mamba_vision_")]
    return [n for n in names if n in PAPER or not n.startswith("mambavision_")]  # MambaVision: the 1k models


def _measure_zoo(name: str) -> dict:
    return measure(name, 224, 1000)


def _zoo_rows(names: list[str], jobs: int):
    """measure() of each name at 224, in order; on ``jobs`` forked processes when jobs > 1 (the biggest
    models first, so that the two workers finish together)."""
    if jobs <= 1 or len(names) <= 1:
        yield from map(_measure_zoo, names)
        return
    import multiprocessing

    threads = torch.get_num_threads()
    order = sorted(names, key=lambda n: -_ZOO_COST.get(n, 0.0))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=torch.set_num_threads, initargs=(max(1, threads // jobs),)) as pool:
        pending = {n: pool.apply_async(_measure_zoo, (n,)) for n in order}
        for n in names:
            yield pending[n].get()


# rough cost of counting each model (its full GFLOPs at 224), to hand the big ones out first
_ZOO_COST = {name: (p.get("gflops") or 0.0) for name, p in PAPER.items()} | {
    "vim_base_patch16_224": 21.0, "vim_small_patch16_224": 6.0, "vim_tiny_patch16_224": 2.0,
    "vim_base_patch16_stride8_224": 77.0, "vim_small_patch16_stride8_224": 22.0,
    "vim_tiny_patch16_stride8_224": 7.0, "simba_l_mlp": 20.0}


def run(args: argparse.Namespace) -> list[dict]:
    if args.all:
        jobs = args.jobs
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        rows = []
        if not args.json:
            print(ZOO_HEADER, flush=True)
        for row in _zoo_rows(zoo_names(), jobs):
            name = row["model"]
            paper = PAPER.get(name, {})
            convention = paper.get("convention", "fvcore")
            compared = row["gflops_modules"] if convention == "modules" else row["gflops"]
            row.update(paper_params_m=paper.get("params_m"), paper_gflops=paper.get("gflops"),
                       paper_convention=convention, gflops_compared=compared,
                       params_diff_pct=_diff(row["params_m"], paper.get("params_m")),
                       gflops_diff_pct=_diff(compared, paper.get("gflops")), paper_source=paper.get("source"))
            rows.append(row)
            if not args.json:
                print(_zoo_line(row), flush=True)
        return rows
    if not args.model:
        raise ValueError("give --model NAME [NAME ...] or --all")
    kwargs = dict(args.model_kwargs or {})
    rows = []
    for name in args.model:
        for size in args.img_size or [None]:
            row = measure(name, size, args.num_classes, kwargs)
            rows.append(row)
            if not args.json:
                print(f"{name:40s} {row['img_size']:5d}px  {row['params_m']:9.3f}M params  {row['gflops']:9.3f} GFLOPs",
                      flush=True)
                if args.by_operator:
                    for op, f in sorted(row["by_operator"].items(), key=lambda kv: -kv[1]):
                        print(f"    {op:36s} {f / 1e9:9.4f} G")
                if row["unsupported"]:
                    print(f"    not counted: {dict(row['unsupported'])}")
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


ZOO_HEADER = (f"{'model':30s} {'params (paper, diff)':>32s}  {'GFLOPs compared (paper, diff, convention)':>44s}"
              f"  {'full count':>16s}  [source]")


def _zoo_line(row: dict) -> str:
    return (f"{row['model']:30s} {row['params_m']:7.2f}M (paper {_fmt(row['paper_params_m'], '5.1f')}M, "
            f"{_fmt(row['params_diff_pct'], '+5.1f')}%)  {row['gflops_compared']:6.2f}G (paper "
            f"{_fmt(row['paper_gflops'], '5.1f')}G, {_fmt(row['gflops_diff_pct'], '+5.1f')}%, {row['paper_convention']})"
            f"  full count {row['gflops']:6.2f}G  [{row['paper_source']}]")


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    args = build_parser(description).parse_args(argv)
    rows = run(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0

