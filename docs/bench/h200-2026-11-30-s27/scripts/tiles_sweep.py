"""Tile sweeps at the shapes the models give (args captured from a real call), do_bench medians in ms.
Vim-S backward (bwd tiles, carry tiles), Vim-Ti 1248 inference forward (fwd tiles)."""
import dataclasses, sys, time
import torch
from triton.testing import do_bench
from vssm.mamba import Mamba
import vssm  # noqa
from vssm.kernels.selective_scan import triton_bwd as tb
from vssm.kernels.selective_scan import triton_fwd as tf
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES

cap = {}
orig_b, orig_f = tb.triton_backward_chunks, tf.triton_forward
def cap_b(*a, **k):
    cap["b"] = (a, k); return orig_b(*a, **k)
def cap_f(*a, **k):
    cap["f"] = (a, k); return orig_f(*a, **k)
tb.triton_backward_chunks = cap_b
tf.triton_forward = cap_f

torch.manual_seed(0)
which = sys.argv[1:] or ["bwd", "carry", "fwd"]

def maxdiff(ref, got):
    return max(((r.float() - g.float()).abs().max() / (r.float().abs().max() + 1e-12)).item()
               for r, g in zip(ref, got) if r is not None and r.numel())

if {"bwd", "carry"} & set(which):
    m = Mamba(384, d_state=16, expand=2, bidirectional=True).cuda()
    x = torch.randn(128, 197, 384, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = m(x)
    y.float().sum().backward()
    a, k = cap["b"]
    print("bwd shapes", [tuple(t.shape) if isinstance(t, torch.Tensor) else t for t in a[:8]], flush=True)
    ref = orig_b(*a, **k)
    base = do_bench(lambda: orig_b(*a, **k), warmup=50, rep=300)
    print(f"Vim-S bwd default: {base:.3f} ms", flush=True)
    grid = []
    if "bwd" in which:
        grid += [dict(bwd_T=T, bwd_dn=dn, bwd_warps=w) for T, dn, w in
                 [(16, 128, 4), (8, 128, 4), (32, 128, 4), (16, 64, 2), (16, 64, 4), (16, 256, 4), (16, 256, 8),
                  (16, 128, 8), (16, 128, 2), (8, 256, 4), (8, 256, 8), (8, 64, 2)]]
        grid += [dict(bwd_target_programs=t) for t in (528, 2112, 4224)]
    if "carry" in which:
        grid += [dict(carry_dn=dn, carry_warps=w) for dn, w in [(64, 2), (64, 4), (256, 4), (256, 8), (128, 8), (128, 2), (32, 1)]]
    for g in grid:
        t0 = time.time()
        tiles = dataclasses.replace(DEFAULT_TILES, **g)
        try:
            got = orig_b(*a, **k, tiles=tiles)
            ms = do_bench(lambda: orig_b(*a, **k, tiles=tiles), warmup=50, rep=300)
            print(f"  {g}: {ms:.3f} ms ({ms / base:.3f}x), diff {maxdiff(ref, got):.2e} [{time.time() - t0:.0f}s]", flush=True)
        except Exception as e:
            print(f"  {g}: {type(e).__name__} {str(e)[:120]}", flush=True)
    del m, x, y, a, k, ref

if "fwd" in which:
    m = Mamba(192, d_state=16, expand=2, bidirectional=True).cuda().eval()
    x = torch.randn(8, 6085, 192, device="cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        m(x)
        a, k = cap["f"]
        print("fwd shapes", [tuple(t.shape) if isinstance(t, torch.Tensor) else t for t in a[:8]], k, flush=True)
        ref = orig_f(*a, **k)
        base = do_bench(lambda: orig_f(*a, **k), warmup=50, rep=300)
        print(f"Vim-Ti 1248 fwd default: {base:.3f} ms", flush=True)
        grid = [dict(fwd_T=T, fwd_dn=dn, fwd_warps=w) for T, dn, w in
                [(16, 128, 4), (64, 128, 4), (32, 64, 2), (32, 64, 4), (32, 256, 4), (32, 256, 8), (32, 128, 8),
                 (32, 128, 2), (16, 256, 8), (64, 64, 4), (16, 64, 2), (8, 128, 4)]]
        grid += [dict(fwd_min_programs=p) for p in (1056, 2112)] + [dict(fwd_loop_min_programs=300)]
        for g in grid:
            t0 = time.time()
            tiles = dataclasses.replace(DEFAULT_TILES, **g)
            try:
                got = orig_f(*a, **k, tiles=tiles)
                ms = do_bench(lambda: orig_f(*a, **k, tiles=tiles), warmup=50, rep=300)
                print(f"  {g}: {ms:.3f} ms ({ms / base:.3f}x), diff {maxdiff(ref[:2], got[:2]):.2e} [{time.time() - t0:.0f}s]", flush=True)
            except Exception as e:
                print(f"  {g}: {type(e).__name__} {str(e)[:120]}", flush=True)
