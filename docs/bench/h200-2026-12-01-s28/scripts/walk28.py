"""Stop 28: the walking forward with EVEN_N (N = NP, unmasked state loads) against the masked form, do_bench
medians, bf16 token-major inputs as the Vim mixer gives them at inference, plus its error against float64."""
import torch
from triton.testing import do_bench
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd as tf
from vssm.kernels.selective_scan.op import prepare
import os
from vssm.kernels.selective_scan import selective_scan
DEV = os.environ.get('DEV', 'cuda')
SHAPES = [(128, 768, 197, 16), (128, 384, 197, 16), (64, 384, 197, 16), (128, 384, 197, 8)] if DEV == 'cuda' else [(2, 8, 5, 16), (2, 8, 5, 4)]
kern = tf._fwd_walk_kernel
class Masked:
    def __init__(self, k): self.k = k
    def __getitem__(self, grid):
        def run(*a, **kw):
            kw["EVEN_N"] = False
            return self.k[grid](*a, **kw)
        return run
    def __getattr__(self, n): return getattr(self.k, n)
torch.manual_seed(0)
for (b, d, L, N) in SHAPES:
    K = 2
    u = torch.randn(b, K, L, d, device=DEV, dtype=torch.bfloat16).transpose(2, 3)
    dt = (torch.randn(b, K, L, d, device=DEV, dtype=torch.bfloat16) * 0.5).transpose(2, 3)
    A = -(torch.rand(K, d, N, device=DEV) + 0.5)
    Bm = torch.randn(b, K, L, 1, N, device=DEV, dtype=torch.bfloat16).permute(0, 1, 3, 4, 2)
    Cm = torch.randn(b, K, L, 1, N, device=DEV, dtype=torch.bfloat16).permute(0, 1, 3, 4, 2)
    D = torch.randn(K, d, device=DEV); bias = torch.randn(K, d, device=DEV) * 0.5 - 1
    args = prepare(u, dt, A, Bm, Cm, D, None, bias, True, ["natural", "reverse"], None, "sum", "triton", grad=False)
    fn = lambda: tf.triton_forward(*args[:10], args[10], backward=False, tiles=tf.DEFAULT_TILES)
    if DEV == "cuda":
        assert tf._walks(tf.DEFAULT_TILES, b, d, d, tf.next_pow2(N), L, True, False), "does not walk"
    else:
        import dataclasses; tf.DEFAULT_TILES = dataclasses.replace(tf.DEFAULT_TILES, fwd_walk=True, fwd_walk_bd=4)
    res = {}
    for name, k in (("even", kern), ("masked", Masked(kern))):
        tf._fwd_walk_kernel = k
        out = fn()[0]
        res[name] = (do_bench(fn, warmup=25, rep=200) if DEV == 'cuda' else 0.0, out.float())
    tf._fwd_walk_kernel = kern
    ref = selective_scan(u.double(), dt.double(), A.double(), Bm.double(), Cm.double(), D.double(), None,
                         bias.double(), True, orders=["natural", "reverse"], backend="reference")
    err = lambda o: float((o.double() - ref).norm() / ref.norm())
    print(f"({b}, {d}, {L}, {N}) K2: even {res['even'][0]*1e3:.1f} us (err {err(res['even'][1]):.1e}), masked "
          f"{res['masked'][0]*1e3:.1f} us (err {err(res['masked'][1]):.1e}), bitwise equal "
          f"{torch.equal(res['even'][1], res['masked'][1])}", flush=True)
