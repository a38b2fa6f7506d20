"""The N = 64 chunk backward (and its carry pair) at SiMBA-S's shapes as its mixer now calls it (one direction,
no z: the gate is outside; u, delta, x_dbl channel-major with the batch inside the rows; dout = dy float32),
bf16, tile variants; do_bench medians (ms) and the max relative difference of every gradient to the default."""
import json
import torch
from triton.testing import do_bench
import vssm  # noqa
from vssm.kernels.selective_scan.triton_common import Tiles
from vssm.kernels.selective_scan.triton_bwd import triton_backward_chunks
torch.manual_seed(0)
dev, dt = "cuda", torch.bfloat16
cfgs = [dict()] + [dict(bwd_dn=dn, bwd_warps=w, bwd_T=T) for dn, w, T in
                   [(256, 4, 8), (256, 8, 8), (256, 8, 16), (512, 8, 8), (128, 4, 8), (128, 2, 16), (64, 2, 16)]]
def bi(*shape):  # (batch, 1, M, L) stored (1, M, batch, L)
    b, k, m, l = shape
    return torch.empty(k, m, b, l, device=dev, dtype=dt).permute(2, 0, 1, 3)
for (batch, E, L, N) in [(128, 128, 3136, 64), (128, 256, 784, 64), (128, 640, 196, 64), (128, 896, 49, 64), (128, 896, 1, 64)]:
    R = max(1, E // 16)
    u = bi(batch, 1, E, L).normal_()
    delta = bi(batch, 1, E, L).normal_().mul_(0.5).sub_(1)
    x_dbl = bi(batch, 1, R + 2 * N, L).normal_()
    B, C = x_dbl[:, :, R:R + N].unsqueeze(2), x_dbl[:, :, R + N:].unsqueeze(2)
    A = -torch.rand(1, E, N, device=dev) - 0.5
    D = torch.randn(1, E, device=dev); bias = torch.randn(1, E, device=dev) * 0.5 - 2
    dout = torch.empty(E, batch, L, device=dev).normal_().permute(1, 0, 2)
    dlast = torch.zeros(batch, 1, E, N, device=dev)
    gbase, line = None, []
    for cfg in cfgs:
        t = Tiles(**cfg)
        try:
            f = lambda: triton_backward_chunks(dout, dlast, u, delta, A, B, C, D, None, bias, None, True, 1.0, tiles=t)
            g = f()
            if gbase is None:
                gbase = [x.float() if x is not None else None for x in g]
            err = max(float((a.float() - b).abs().max() / b.abs().max().clamp_min(1e-9)) for a, b in zip(g, gbase) if a is not None)
            ms = do_bench(f, warmup=5, rep=30, return_mode="median")
            line.append(f"{json.dumps(cfg)}: {ms:.3f} ms (diff {err:.1e})")
        except Exception as e:
            line.append(f"{json.dumps(cfg)}: failed {str(e)[:100]}")
    print(f"(b{batch}, E{E}, L{L}, N{N}):\n  " + "\n  ".join(line), flush=True)
