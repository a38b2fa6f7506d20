"""Stop 32: conv-projection kernel tile sweep against the three-launch path, do_bench medians (us), bf16, both
directions; u layout cm (channel-major) / tm (token-major)."""
import torch, triton
from vssm.kernels.conv1d import depthwise_conv1d
from vssm.kernels.conv1d.op import new_conv_out
from vssm.kernels.selective_scan import triton_conv_proj as cp
from vssm.kernels.selective_scan.op import new_like_layout
from vssm.kernels.selective_scan.projected import _project_into
CFGS = [(64, 64, 4, 1, True), (64, 64, 4, 1, False), (64, 64, 4, 2, False), (64, 64, 4, 3, False), (128, 64, 8, 2, False),
        (128, 32, 4, 2, False), (32, 64, 4, 2, False), (64, 32, 4, 2, False), (128, 128, 8, 2, False), (64, 128, 4, 2, False),
        (128, 16, 4, 2, False), (256, 16, 4, 2, False)]
for (batch, L, C, R, N, cm, tag) in [(8, 6085, 384, 12, 16, True, "Vim-Ti 1248 cm"), (8, 6085, 384, 12, 16, False, "Vim-Ti 1248 tm"),
                                     (128, 197, 768, 24, 16, False, "Vim-S 224 tm"), (128, 197, 384, 12, 16, False, "Vim-Ti 224 tm")]:
    K, W, dt = 2, 4, torch.bfloat16
    x = torch.randn(batch, L, 2 * C, device="cuda").to(dt)[:, :, :C]
    taps = torch.randn(K, C, W, device="cuda") * 0.5; bias = torch.randn(K, C, device="cuda")
    wx = (torch.randn(K, R + 2 * N, C, device="cuda") * C ** -0.5).to(dt); wdt = (torch.randn(K, C, R, device="cuda") * R ** -0.5).to(dt)
    u = new_conv_out(x, K, cm).transpose(2, 3)
    xd = new_like_layout(u, (batch, K, R + 2 * N, L), dt); de = new_like_layout(u, (batch, K, C, L), dt)
    def apart():
        uu = depthwise_conv1d(x, taps, bias, [-3, 0], silu=True, channel_major=cm).transpose(2, 3)
        _project_into(uu, wx, wdt, True)
    byts = (x.numel() * 2 * K + u.numel() * 2 * 2 + xd.numel() * 2)
    t_apart = triton.testing.do_bench(apart, warmup=25, rep=150)
    ref = None
    print(f"{tag:15s} apart {t_apart*1e3:7.1f} us; floor {byts/4.0e12*1e6:.1f} us", flush=True)
    for bl, bc, w, st, wid in CFGS:
        try:
            f = lambda: cp.conv_project(x, taps, bias, [-3, 0], wx, wdt, u, xd, de, block_l=bl, block_c=bc, num_warps=w,
                                        num_stages=st, widen=wid)
            f(); torch.cuda.synchronize()
            cur = (u.float().sum().item(), xd.float().sum().item(), de.float().sum().item())
            t = triton.testing.do_bench(f, warmup=25, rep=150)
            print(f"   BL{bl:3d} BC{bc:3d} w{w} st{st} widen{int(wid)}: {t*1e3:7.1f} us ({byts / t / 1e9:.2f} TB/s) sums {cur[0]:.4g} {cur[1]:.4g} {cur[2]:.4g}", flush=True)
        except Exception as e:
            print(f"   BL{bl} BC{bc} w{w} st{st} widen{int(wid)}: {type(e).__name__} {str(e)[:150]}", flush=True)
