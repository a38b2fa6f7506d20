"""Vim-Ti at 1248 (batch 8, D 384, L 6085, N 16, both directions, bf16, token-major): the walking forward with
more time segments (their start states from the carry pass) against the chunk kernel; do_bench medians."""
import dataclasses
import torch, triton
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
from vssm.kernels.selective_scan.op import prepare
torch.manual_seed(0)
dev, dt = "cuda", torch.bfloat16
for (batch, D, L, N) in [(8, 384, 6085, 16), (32, 384, 1025, 16)]:
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
    ref = run(cm, dataclasses.replace(DEFAULT_TILES, fwd_walk=False))
    r = ref().float()
    line = [f"chunk cm: {triton.testing.do_bench(ref, warmup=10, rep=100):.3f}"]
    for bd in (32, 64, 128):
        for minp in (264, 1024, 2048, 4096, 8192):
            t = dataclasses.replace(DEFAULT_TILES, fwd_walk=True, fwd_walk_bd=bd, fwd_min_programs=minp,
                                    fwd_walk_loop_min_programs=1 << 30)
            f = run(tm, t)
            o = f().float()
            err = ((o - r).abs().max() / r.abs().max()).item()
            line.append(f"walk bd{bd} min_programs {minp}: {triton.testing.do_bench(f, warmup=10, rep=100):.3f} (diff {err:.1e})")
    print(f"(b{batch}, D{D}, L{L}, N{N}, K{K}):\n  " + "\n  ".join(line), flush=True)
