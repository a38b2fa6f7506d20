"""Run one forward and one backward of the Triton selective scan inside a CUDA profiler range.

Meant to be run under Nsight Compute, which then profiles exactly those kernels (compiles and a
warm-up run happen before the range starts):

    ncu --profile-from-start off --section SpeedOfLight --section Occupancy --section WarpStateStats \\
        --section LaunchStats python tools/profile_scan.py --shapes vim_s_224,vmamba_t_s1
"""

from __future__ import annotations

import argparse

import torch

from vssm.kernels import selective_scan
from vssm.kernels.selective_scan.cases import make_inputs

# (batch, D, L, N, G) of the kernel shapes of tools/bench_scan.py
SHAPES = {
    "vim_s_224": (128, 768, 197, 16, 1),
    "vim_ti_1248": (8, 384, 6085, 16, 1),
    "vmamba_t_s1": (128, 768, 3136, 1, 4),
    "n16_g4": (64, 384, 3136, 16, 4),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("profile_scan: needs a CUDA device")

    runs = []
    for name in args.shapes.split(","):
        x = make_inputs(*SHAPES[name], dtype=DTYPES[args.dtype], device="cuda")
        leaves = {k: (v.requires_grad_(True) if v is not None else None) for k, v in x.items()}

        def step(leaves=leaves):
            out = selective_scan(**leaves, delta_softplus=True, backend="triton")
            torch.autograd.grad(out, [v for v in leaves.values() if v is not None], torch.ones_like(out))

        step()  # compile and warm up outside the profiled range
        runs.append((name, step))
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    for name, step in runs:
        torch.cuda.nvtx.range_push(name)
        step()
        torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


if __name__ == "__main__":
    main()
