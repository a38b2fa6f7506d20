"""Run one forward and one backward of the Triton selective scan inside a CUDA profiler range.

Meant to be run under Nsight Compute, which then profiles exactly those kernels (compiles and a
warm-up run happen before the range starts):

    ncu --profile-from-start off --section SpeedOfLight --section Occupancy --section WarpStateStats \\
        --section LaunchStats python tools/profile_scan.py --shapes vim_s_224,vmamba_t_s1
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.bench_scan import DTYPES, SHAPES, make_inputs  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("profile_scan: needs a CUDA device")
    from vssm.kernels.selective_scan import triton_scan as ts

    runs = []
    for name in args.shapes.split(","):
        shape = SHAPES[name][0]
        ins = make_inputs(shape, DTYPES[args.dtype])
        dout = torch.randn(ins[0].shape, device="cuda").to(DTYPES[args.dtype])
        dlast = torch.randn(shape[0], shape[1], shape[3], device="cuda")
        ts.triton_forward(*ins, True)  # compile and warm up outside the profiled range
        ts.triton_backward(dout, dlast, *ins, True)
        runs.append((name, ins, dout, dlast))
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    for name, ins, dout, dlast in runs:
        torch.cuda.nvtx.range_push(name)
        ts.triton_forward(*ins, True)
        ts.triton_backward(dout, dlast, *ins, True)
        torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


if __name__ == "__main__":
    main()
