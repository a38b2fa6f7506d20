"""The forward's time segments with the two-pass carry (local segments side by side, then the combine), H200, bf16:
Vim-Ti shapes at high resolution (batch 8 / 32, D 384, N 16, both directions), inputs as the Vim mixer gives them
(channel-major for the chunk kernel, token-major for the walk). do_bench medians (ms) and each variant's max
relative difference to the unsegmented chunk kernel (fwd_min_programs=1: no carry)."""
import dataclasses, sys
import torch, triton
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
from vssm.kernels.selective_scan.op import prepare
torch.manual_seed(0)
dev, dt = "cuda", torch.bfloat16
shapes = [(8, 384, 6085, 16), (8, 384, 4097, 16), (32, 384, 1025, 16)]
if "--quick" in sys.argv:
    shapes = shapes[:1]
for (batch, D, L, N) in shapes:
    K, R = 2, 25
    M = R + 2 * N
    u0 = torch.randn(K, batch, L, D, device=dev, dtype=dt)
    d0 = torch.randn(K, batch, L, D, device=dev, dtype=dt) * 0.5 - 1.0
    x0 = torch.randn(K, batch, L, M, device=dev, dtype=dt)
    A = -torch.rand(K, D, N, device=dev).add(0.5)
    Dv = torch.randn(K, D, device=dev); bias = torch.randn(K, D, device=dev) * 0.1
    tm = dict(u=u0.permute(1, 0, 3, 2), delta=d0.permute(1, 0, 3, 2), x=x0.permute(1, 0, 3, 2))
    cm = dict(u=u0.permute(0, 3, 1, 2).contiguous().permute(2, 0, 1, 3),
              delta=d0.permute(0, 3, 1, 2).contiguous().permute(2, 0, 1, 3),
              x=x0.permute(0, 3, 1, 2).contiguous().permute(2, 0, 1, 3))
    def run(lay, tiles):
        x = lay["x"]
        args = prepare(lay["u"], lay["delta"], A, x[:, :, R:R + N].unsqueeze(2), x[:, :, R + N:].unsqueeze(2), Dv,
                       None, bias, True, ["natural", "reverse"], None, "mean", "triton", grad=False)
        return lambda: triton_fwd.triton_forward(*args[:11], tiles=tiles)[0]
    ref = run(cm, dataclasses.replace(DEFAULT_TILES, fwd_walk=False, fwd_min_programs=1))
    r = ref().float()
    line = [f"chunk cm no segments: {triton.testing.do_bench(ref, warmup=10, rep=100):.3f}"]
    variants = {"default cm": (cm, DEFAULT_TILES), "default tm": (tm, DEFAULT_TILES)}
    for fmin in (264, 528, 1056, 2112):
        for cmin in (1, 528, 1056, 2112, 4224):
            variants[f"chunk cm fwd_min {fmin} carry_min {cmin}"] = (
                cm, dataclasses.replace(DEFAULT_TILES, fwd_walk=False, fwd_min_programs=fmin, carry_min_programs=cmin))
    for bd in (32, 64, 128):
        for fmin in (1056, 2112, 4224):
            variants[f"walk tm bd{bd} fwd_min {fmin}"] = (tm, dataclasses.replace(
                DEFAULT_TILES, fwd_walk=True, fwd_walk_bd=bd, fwd_min_programs=fmin, fwd_walk_loop_min_programs=1 << 30))
    from vssm.kernels.selective_scan import triton_carry_old  # HEAD~'s run_carry: one serial walk per (row, block)
    new_carry = triton_fwd.run_carry
    triton_fwd.run_carry = triton_carry_old.run_carry
    try:
        f = run(cm, DEFAULT_TILES)
        o = f().float()
        line.append(f"OLD serial carry, default cm: {triton.testing.do_bench(f, warmup=10, rep=100):.3f} "
                    f"(diff {((o - r).abs().max() / r.abs().max()).item():.1e})")
    finally:
        triton_fwd.run_carry = new_carry
    for name, (lay, tiles) in variants.items():
        try:
            f = run(lay, tiles)
            o = f().float()
            err = ((o - r).abs().max() / r.abs().max()).item()
            line.append(f"{name}: {triton.testing.do_bench(f, warmup=10, rep=100):.3f} (diff {err:.1e})")
        except Exception as e:  # noqa
            line.append(f"{name}: failed {repr(e)[:200]}")
    print(f"(b{batch}, D{D}, L{L}, N{N}, K{K}):\n  " + "\n  ".join(line), flush=True)
