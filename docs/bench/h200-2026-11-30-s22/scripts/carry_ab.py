"""Old (one serial walk per (row, channel block)) against the two-pass carry, where the default tiles cut time
into segments: small batches on long sequences (bf16, both directions for N 16; one direction for N 1).
do_bench medians (ms) of the whole forward; diff = max relative difference to the unsegmented forward."""
import dataclasses, sys
import torch, triton
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd, triton_carry_old
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
from vssm.kernels.selective_scan.op import prepare
torch.manual_seed(0)
tiny = "--tiny" in sys.argv  # TRITON_INTERPRET=1 on the CPU: the script's own check
dev, dt = ("cpu", torch.float32) if tiny else ("cuda", torch.bfloat16)
bench = (lambda g: 0.0) if tiny else (lambda g: triton.testing.do_bench(g, warmup=10, rep=100))
new_carry = triton_fwd.run_carry
SHAPES = [(1, 16, 61, 16, ["natural", "reverse"]), (1, 16, 61, 1, None)] if tiny else [
    (1, 384, 6085, 16, ["natural", "reverse"]), (2, 384, 6085, 16, ["natural", "reverse"]),
    (1, 384, 4097, 16, ["natural", "reverse"]), (1, 768, 3137, 16, ["natural", "reverse"]),
    (4, 384, 1025, 16, ["natural", "reverse"]), (1, 768, 3136, 1, None), (2, 192, 12544, 1, None)]
for (batch, D, L, N, orders) in SHAPES:
    K = len(orders) if orders else 1
    u = torch.randn(batch, K, D, L, device=dev, dtype=dt) if K > 1 else torch.randn(batch, D, L, device=dev, dtype=dt)
    delta = (torch.randn_like(u) * 0.5 - 1.0)
    shp = (batch, K, 1, N, L) if K > 1 else (batch, 1, N, L)
    Bm = torch.randn(shp, device=dev, dtype=dt); Cm = torch.randn(shp, device=dev, dtype=dt)
    A = -torch.rand(K, D, N, device=dev).add(0.5) if K > 1 else -torch.rand(D, N, device=dev).add(0.5)
    Dv = torch.randn(A.shape[:-1], device=dev); bias = torch.randn(A.shape[:-1], device=dev) * 0.1
    args = prepare(u, delta, A, Bm, Cm, Dv, None, bias, True, orders, None, "sum" if K > 1 else None, "triton", grad=False) \
        if K > 1 else prepare(u, delta, A, Bm, Cm, Dv, None, bias, True, None, None, None, "triton", grad=False)
    def f(tiles):
        return lambda: triton_fwd.triton_forward(*args[:11], tiles=tiles)[0]
    base = dict(fwd_T=8, fwd_dn=16, carry_dn=16) if tiny else {}
    DEFAULT = dataclasses.replace(DEFAULT_TILES, **base)
    r = f(dataclasses.replace(DEFAULT, fwd_min_programs=1))().float()
    line = []
    for label, carry, tiles in [("no segments", new_carry, dataclasses.replace(DEFAULT, fwd_min_programs=1)),
                                ("old carry", triton_carry_old.run_carry, DEFAULT),
                                ("new carry", new_carry, DEFAULT),
                                ("new carry, fwd_min 528", new_carry, dataclasses.replace(DEFAULT, fwd_min_programs=528)),
                                ("new carry, fwd_min 1056", new_carry, dataclasses.replace(DEFAULT, fwd_min_programs=1056)),
                                ("new carry, carry_min 1", new_carry, dataclasses.replace(DEFAULT, carry_min_programs=1)),
                                ("new carry, carry_min 4224", new_carry, dataclasses.replace(DEFAULT, carry_min_programs=4224))]:
        triton_fwd.run_carry = carry
        try:
            g = f(tiles)
            o = g().float()
            line.append(f"{label}: {bench(g):.3f} "
                        f"(diff {((o - r).abs().max() / r.abs().max()).item():.1e})")
        finally:
            triton_fwd.run_carry = new_carry
    print(f"(b{batch}, D{D}, L{L}, N{N}, K{K}): " + " | ".join(line), flush=True)
