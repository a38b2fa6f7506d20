"""The conv op's backward against its tokens per program (ConvTiles.bwd_chunk), at Vim's and MambaVision's shapes,
dout token-major and channel-major (the Vim mixer's layout); do_bench medians, every result against the default's."""
import functools, dataclasses
import torch, triton
from vssm.kernels.conv1d import triton_conv1d as mod
def err(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())
for name, (batch, L, C, offs) in {"vim_s_224": (128, 197, 768, (-3, 0)), "vim_ti_224": (128, 197, 384, (-3, 0)),
                                   "vim_ti_1248": (8, 6085, 384, (-3, 0)), "mv_t_same": (128, 196, 320, (-1,))}.items():
    for layout in ("token", "channel"):
        K, W = len(offs), 4 if offs != (-1,) else 3
        torch.manual_seed(0)
        x = torch.randn(batch, L, 2 * C, device="cuda", dtype=torch.bfloat16)[..., :C]
        w = torch.randn(K, C, W, device="cuda") * 0.3
        b = torch.randn(K, C, device="cuda") * 0.1
        if layout == "token":
            dout = torch.randn(K, batch, L, C, device="cuda", dtype=torch.bfloat16).transpose(0, 1)
        else:
            dout = torch.randn(K, C, batch, L, device="cuda", dtype=torch.bfloat16).permute(2, 0, 3, 1)
        ref = mod.triton_conv_backward(dout, x, w, b, offs, True)
        for chunk in (256, 128, 64, 32):
            tiles = dataclasses.replace(mod.DEFAULT_TILES, bwd_chunk=chunk)
            got = mod.triton_conv_backward(dout, x, w, b, offs, True, tiles=tiles)
            e = max(err(a, r) for a, r in zip(got, ref))
            ms = triton.testing.do_bench(functools.partial(mod.triton_conv_backward, dout, x, w, b, offs, True, tiles=tiles),
                                         warmup=30, rep=200, return_mode="median")
            print(f"{name:12s} {layout:7s} chunk {chunk:3d}: {ms*1e3:7.1f} us  diff {e:.1e}", flush=True)
