"""Stop 29: the chunk forward with states-middle tiles (SMID) against the states-last tiles, do_bench medians,
bf16, two directions, token-major u / delta / z as the Vim mixer gives them; error against float64."""
import dataclasses, os, sys
import torch
from triton.testing import do_bench
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd as tf
from vssm.kernels.selective_scan.op import prepare
from vssm.kernels.selective_scan import selective_scan
DEV = os.environ.get('DEV', 'cuda')
D0 = tf.DEFAULT_TILES
CFG = {
    "old": dict(fwd_smid=False),
    "default": dict(),
    "smid": dict(fwd_smid=True),
}
SHAPES = [((4, 384, 6085, 16), False), ((6, 384, 6085, 16), False), ((2, 768, 6085, 16), False),
          ((128, 768, 197, 16), True), ((8, 384, 6085, 16), False)]
if DEV != 'cuda':
    SHAPES = [((2, 8, 21, 16), False), ((2, 8, 13, 8), True)]
only = sys.argv[1:] or list(CFG)
torch.manual_seed(0)
for (b, d, L, N), bwd in SHAPES:
    K = 2
    u = torch.randn(b, K, L, d, device=DEV, dtype=torch.bfloat16).transpose(2, 3)
    dt = (torch.randn(b, K, L, d, device=DEV, dtype=torch.bfloat16) * 0.5).transpose(2, 3)
    z = torch.randn(b, L, d, device=DEV, dtype=torch.bfloat16).transpose(1, 2)
    A = -(torch.rand(K, d, N, device=DEV) + 0.5)
    Bm = torch.randn(b, K, L, 1, N, device=DEV, dtype=torch.bfloat16).permute(0, 1, 3, 4, 2)
    Cm = torch.randn(b, K, L, 1, N, device=DEV, dtype=torch.bfloat16).permute(0, 1, 3, 4, 2)
    D = torch.randn(K, d, device=DEV); bias = torch.randn(K, d, device=DEV) * 0.5 - 1
    args = prepare(u, dt, A, Bm, Cm, D, z, bias, True, ["natural", "reverse"], None, "sum", "triton", grad=False)
    ref = selective_scan(u.double(), dt.double(), A.double(), Bm.double(), Cm.double(), D.double(), z.double(),
                         bias.double(), True, orders=["natural", "reverse"], backend="reference")
    line = []
    for name in only:
        tiles = dataclasses.replace(D0, **CFG[name])
        fn = lambda: tf.triton_forward(*args[:10], args[10], backward=bwd, tiles=tiles)
        out = fn()[0]
        err = float((out.double() - ref).norm() / ref.norm())
        ms = do_bench(fn, warmup=20, rep=100) if DEV == 'cuda' else 0.0
        line.append(f"{name} {ms*1e3:.1f}us e{err:.1e}")
    print(f"({b},{d},{L},{N}) bwd={bwd}: " + " | ".join(line), flush=True)
