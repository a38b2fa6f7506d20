"""Tile sweep of the scan kernels at SiMBA-S's shapes (N = 64), bf16, as the mixer calls them."""
import dataclasses, json, sys, time
import torch
from triton.testing import do_bench
from vssm.kernels.selective_scan.triton_common import Tiles
from vssm.kernels.selective_scan.triton_fwd import triton_forward
from vssm.kernels.selective_scan.triton_bwd import triton_backward_chunks

torch.manual_seed(0)
dev, dt = "cuda", torch.bfloat16
res = []
shapes = [(128, 128, 3136, 64), (128, 256, 784, 64), (128, 640, 196, 64), (128, 768, 197, 16)]
fwd_cfgs = [dict()] + [dict(fwd_dn=dn, fwd_warps=w, fwd_T=T) for dn in (256, 512, 1024) for w in (4, 8) for T in (16, 32)]
bwd_cfgs = [dict()] + [dict(bwd_dn=dn, bwd_warps=w, bwd_T=T) for dn in (256, 512) for w in (4, 8) for T in (8, 16)] + [dict(carry_dn=256, carry_warps=8)]
for (batch, E, L, N) in shapes:
    R = 24
    xz = torch.randn(batch, L, 2 * E, device=dev, dtype=dt)
    z = xz[..., E:].transpose(1, 2).unsqueeze(1)  # (batch, 1, E, L) token-major view
    u = torch.randn(batch, 1, E, L, device=dev, dtype=dt)
    delta = (torch.randn(batch, 1, E, L, device=dev) * 0.5 - 1).to(dt)
    x_dbl = torch.randn(batch, 1, R + 2 * N, L, device=dev, dtype=dt)
    B, C = x_dbl[:, :, R:R + N].unsqueeze(2), x_dbl[:, :, R + N:].unsqueeze(2)
    A = -torch.rand(1, E, N, device=dev) - 0.5
    D = torch.randn(1, E, device=dev)
    bias = torch.randn(1, E, device=dev) * 0.5 - 2
    base = None
    for cfg in fwd_cfgs:
        t = Tiles(**cfg)
        try:
            f = lambda: triton_forward(u, delta, A, B, C, D, z, bias, None, True, 1.0, tiles=t)
            out = f()[0]
            if base is None:
                base = out.float()
            err = float((out.float() - base).abs().max())
            ms = do_bench(f, warmup=10, rep=50, return_mode="median")
        except Exception as e:
            ms, err = None, str(e)[:100]
        r = dict(shape=[batch, E, L, N], kind="fwd", cfg=cfg, ms=ms, err=err)
        print(json.dumps(r), flush=True); res.append(r)
    dout = torch.randn(batch, E, L, device=dev, dtype=dt)
    dlast = torch.zeros(batch, 1, E, N, device=dev)
    gbase = None
    for cfg in bwd_cfgs:
        t = Tiles(**cfg)
        try:
            f = lambda: triton_backward_chunks(dout, dlast, u, delta, A, B, C, D, z, bias, None, True, 1.0, tiles=t)
            g = f()
            if gbase is None:
                gbase = [x.float() if x is not None else None for x in g]
            err = max(float((a.float() - b).abs().max() / b.abs().max().clamp_min(1e-9)) for a, b in zip(g, gbase) if a is not None)
            ms = do_bench(f, warmup=5, rep=30, return_mode="median")
        except Exception as e:
            ms, err = None, str(e)[:100]
        r = dict(shape=[batch, E, L, N], kind="bwd", cfg=cfg, ms=ms, err=err)
        print(json.dumps(r), flush=True); res.append(r)
json.dump(res, open(sys.argv[1], "w"), indent=0)
