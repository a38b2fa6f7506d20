"""Time the LayerNorm op's Triton kernels against F.layer_norm on a GPU at VMamba's sizes.

    python tools/bench_norm.py [--sizes 401408x96,25088x384,6272x768] [--rep 200]

For each size (rows x C) and each case: "fp32" (float32 x and parameters, float32 output),
"bf16->fp32" (bfloat16 x, float32 parameters, float32 output: what a LayerNorm gives under bfloat16
autocast; F.layer_norm runs under `torch.autocast`, the op with ``out_dtype=torch.float32``) and
"fp32->bf16" (float32 x, bfloat16 output: a LayerNorm whose output a Linear reads under autocast; the
reference is F.layer_norm followed by the cast that the Linear would make, the op writes bfloat16),
`triton.testing.do_bench` medians of the forward and of forward + backward (gradients of x, weight
and bias), GB/s, and F.layer_norm's time over the op's (> 1: the op is faster).

Bytes are what must be read and written at the least: forward x in and y out; forward + backward adds
x and dy in and dx out (the parameters, C elements, and the per-row statistics are left out). Both
implementations are charged the same bytes, so the GB/s ratio is the time ratio.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

DEFAULT_SIZES = "401408x96,25088x384,6272x768"  # VMamba-T stages 1, 3, 4 at batch 128 (128 x 3136 / 196 / 49)
CASES = {"fp32": (torch.float32, torch.float32), "bf16->fp32": (torch.bfloat16, torch.float32),
         "fp32->bf16": (torch.float32, torch.bfloat16)}


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            m, c = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"bench_norm: --sizes wants ROWSxC items separated by commas, got {item!r}") from None
        sizes.append((m, c))
    return sizes


def _bench(fn, rep: int) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=rep, return_mode="median")


def _err(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def _parse_tiles(text: str):
    from vssm.kernels.layernorm.triton_layernorm import NormTiles

    tiles = []
    for item in filter(None, text.split(",")):
        try:
            tiles.append(NormTiles(*(int(v) for v in item.split(":"))))
        except (TypeError, ValueError):
            raise SystemExit(f"bench_norm: --tiles wants FWD_ELEMS:BWD_ELEMS:MAX_ROWS:BWD_PROGRAMS:FINISH_COLS:"
                             f"FINISH_ELEMS:PARTIAL_BYTES:MIN_PROGRAMS items separated by commas (trailing fields "
                             f"may be left out), got {item!r}") from None
    return tiles


def _bench_case(M: int, C: int, case: str, rep: int) -> None:
    """Print the forward and forward + backward rows of one size and case."""
    from vssm.kernels.layernorm import layer_norm

    xdtype, odtype = CASES[case]
    torch.manual_seed(0)
    x = (torch.randn(M, C, device="cuda") * 2 + 1).to(xdtype).requires_grad_(True)
    w = (torch.randn(C, device="cuda") * 0.5 + 1).requires_grad_(True)
    b = (torch.randn(C, device="cuda") * 0.5).requires_grad_(True)
    dy = torch.randn(M, C, device="cuda", dtype=odtype)
    autocast = xdtype != odtype

    def ref_fwd():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            return F.layer_norm(x, (C,), w, b).to(odtype)

    def op_fwd():
        return layer_norm(x, w, b, out_dtype=odtype)

    y_ref, y_op = ref_fwd(), op_fwd()
    assert y_ref.dtype == y_op.dtype == odtype, (y_ref.dtype, y_op.dtype)
    err = _err(y_op, y_ref)
    ex, eo = x.element_size(), dy.element_size()  # the floor: the op's bytes, charged to both
    nbytes = {"fwd": M * C * (ex + eo), "fwd+bwd": M * C * (ex + eo + ex + eo + ex)}
    for name in ("fwd", "fwd+bwd"):
        if name == "fwd":
            with torch.no_grad():
                t_ref, t_op = _bench(ref_fwd, rep), _bench(op_fwd, rep)
        else:
            t_ref = _bench(lambda: torch.autograd.grad(ref_fwd(), [x, w, b], dy), rep)
            t_op = _bench(lambda: torch.autograd.grad(op_fwd(), [x, w, b], dy), rep)
        gb = nbytes[name] / 1e9
        print(f"{M:>8} {C:>5} {case:>10} {name:>8} {t_ref:>9.4f} {t_op:>8.4f} {gb / (t_ref * 1e-3):>10.0f} "
              f"{gb / (t_op * 1e-3):>8.0f} {t_ref / t_op:>6.2f} {err:>8.1e}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="ROWSxC,ROWSxC,... (default: %(default)s)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated of: " + ", ".join(CASES))
    ap.add_argument("--rep", type=int, default=200, help="do_bench's time budget per measurement, ms")
    ap.add_argument("--tiles", default="", help="time the op under each of these tile settings in turn "
                    "(FWD_ELEMS:BWD_ELEMS:MAX_ROWS:BWD_PROGRAMS:FINISH_COLS:FINISH_ELEMS:PARTIAL_BYTES:"
                    "MIN_PROGRAMS,..., the fields of NormTiles; FINISH_COLS and FINISH_ELEMS powers of two; "
                    "default: the kernels' own)")
    args = ap.parse_args(argv)
    tile_sets = _parse_tiles(args.tiles) or [None]
    sizes = _parse_sizes(args.sizes)
    cases = args.cases.split(",")
    for case in cases:
        if case not in CASES:
            raise SystemExit(f"bench_norm: unknown case {case!r}, expected one of {', '.join(CASES)}")
    if not torch.cuda.is_available():
        raise SystemExit("bench_norm: needs a CUDA device (the Triton kernels run on CUDA only; nothing timed)")

    print(torch.cuda.get_device_name())
    head = (f"{'rows':>8} {'C':>5} {'case':>10} {'pass':>8} {'torch ms':>9} {'op ms':>8} {'torch GB/s':>10} "
            f"{'op GB/s':>8} {'ratio':>6} {'max err':>8}")
    print(head)
    print("-" * len(head))
    from vssm.kernels.layernorm import triton_layernorm

    default_tiles = triton_layernorm.DEFAULT_TILES
    for tiles in tile_sets:
        if tiles is not None:
            print(tiles)
        triton_layernorm.DEFAULT_TILES = tiles or default_tiles  # the kernels read it at call time
        for M, C in sizes:
            for case in cases:
                _bench_case(M, C, case, args.rep)
                torch.cuda.empty_cache()
    triton_layernorm.DEFAULT_TILES = default_tiles


if __name__ == "__main__":
    main()
