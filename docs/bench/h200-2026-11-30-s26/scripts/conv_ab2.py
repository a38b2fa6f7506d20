"""The conv op's backward of the tree on PYTHONPATH (argv: tag, then bwd_BL values to try; none: the default tiles):
do_bench medians of the whole backward and of its g kernel alone, at Vim's and MambaVision's shapes, each against
the float32 definition."""
import sys, functools, dataclasses
import torch, triton
sys.path.insert(0, "tools")
from bench_scan import copy_bandwidth
from vssm.kernels.conv1d.op import _reference_backward
from vssm.kernels.conv1d import triton_conv1d as mod
tag = sys.argv[1]
variants = [None] + [int(v) for v in sys.argv[2:]]
gbps = copy_bandwidth()
print(f"{torch.cuda.get_device_name()} copy {gbps:.0f} GB/s")
def err(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())
for name, (batch, L, C, offs) in {"vim_s_224": (128, 197, 768, (-3, 0)), "vim_ti_224": (128, 197, 384, (-3, 0)),
                                   "vim_ti_1248": (8, 6085, 384, (-3, 0)), "mv_t_same": (128, 196, 320, (-1,))}.items():
    K, W = len(offs), 4 if offs != (-1,) else 3
    torch.manual_seed(0)
    xz = torch.randn(batch, L, 2 * C, device="cuda", dtype=torch.bfloat16)
    x = xz[..., :C]
    w = torch.randn(K, C, W, device="cuda") * 0.3
    b = torch.randn(K, C, device="cuda") * 0.1
    dout = torch.randn(K, batch, L, C, device="cuda", dtype=torch.bfloat16).transpose(0, 1)
    rdx, rdw, rdb = _reference_backward(dout, x, w, b, offs, True)
    floor = batch * L * C * 2 * (2 + K) / (gbps * 1e9) * 1e3
    for v in variants:
        tiles = mod.DEFAULT_TILES if v is None else dataclasses.replace(mod.DEFAULT_TILES, bwd_BL=v)
        dx, dw, db = mod.triton_conv_backward(dout, x, w, b, offs, True, tiles=tiles)
        e = max(err(dx, rdx), err(dw, rdw), err(db, rdb))
        ms = triton.testing.do_bench(functools.partial(mod.triton_conv_backward, dout, x, w, b, offs, True, tiles=tiles),
                                     warmup=50, rep=300, return_mode="median")
        lab = "default" if v is None else f"bwd_BL={v}"
        print(f"{name:12s} {tag} {lab:10s}: {ms*1e3:8.1f} us  floor {floor*1e3:6.1f} us ({100*floor/ms:4.0f}%)  err {e:.1e}", flush=True)
