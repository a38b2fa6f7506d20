"""Stop 32: the conv-projection kernel alone against the conv op + x_proj bmm + dt_proj (thin / bmm), do_bench medians
(us), bf16, both directions, at the models' shapes; bytes moved and the rate."""
import torch, triton
from vssm.kernels.conv1d import depthwise_conv1d
from vssm.kernels.conv1d.op import new_conv_out
from vssm.kernels.selective_scan import triton_conv_proj as cp
from vssm.kernels.selective_scan.op import new_like_layout
from vssm.kernels.selective_scan.projected import _project_into
for (batch, L, C, R, N, cm, tag) in [(8, 6085, 384, 12, 16, True, "Vim-Ti 1248"), (128, 197, 768, 24, 16, True, "Vim-S 224 cm"),
                                     (128, 197, 768, 24, 16, False, "Vim-S 224 tm"), (128, 197, 384, 12, 16, False, "Vim-Ti 224 tm")]:
    K, W, dt = 2, 4, torch.bfloat16
    x = torch.randn(batch, L, 2 * C, device="cuda").to(dt)[:, :, :C]
    taps = torch.randn(K, C, W, device="cuda") * 0.5; bias = torch.randn(K, C, device="cuda")
    wx = (torch.randn(K, R + 2 * N, C, device="cuda") * C ** -0.5).to(dt); wdt = (torch.randn(K, C, R, device="cuda") * R ** -0.5).to(dt)
    u = new_conv_out(x, K, cm).transpose(2, 3)
    xd = new_like_layout(u, (batch, K, R + 2 * N, L), dt); de = new_like_layout(u, (batch, K, C, L), dt)
    def fused(bl=64, bc=64, w=4):
        cp.conv_project(x, taps, bias, [-3, 0], wx, wdt, u, xd, de, block_l=bl, block_c=bc, num_warps=w)
    def apart():
        uu = depthwise_conv1d(x, taps, bias, [-3, 0], silu=True, channel_major=cm).transpose(2, 3)
        _project_into(uu, wx, wdt, True)
    byts = (x.numel() * 2 * K + u.numel() * 2 * 2 + xd.numel() * 2)  # x read per direction, u and delta written, x_dbl
    t_apart = triton.testing.do_bench(apart, warmup=25, rep=200)
    line = f"{tag:14s} apart {t_apart*1e3:7.1f} us"
    for bl, bc, w in ((64, 64, 4), (32, 64, 4), (64, 32, 4), (128, 64, 8), (64, 128, 8), (32, 128, 4)):
        t = triton.testing.do_bench(lambda: fused(bl, bc, w), warmup=25, rep=200)
        line += f" | fused BL{bl} BC{bc} w{w} {t*1e3:7.1f} us ({byts / t / 1e9:.2f} TB/s)"
    print(line, flush=True)
