"""What the gate costs inside the N = 16 backward at Vim-S's shape (both directions, z shared): the chunk
backward kernel and its carry pair timed with and without z on the same inputs (do_bench medians, ms)."""
import torch, triton
from vssm.kernels.selective_scan import triton_bwd, triton_carry, triton_fwd
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES, Prep
from vssm.kernels.layout import new_rows
torch.manual_seed(0)
dev = "cuda"; dt = torch.bfloat16
for (batch, D, L, N) in [(128, 768, 197, 16), (8, 384, 6085, 16), (128, 320, 196, 8)]:
    K = 2
    u = torch.randn(K, D, batch, L, device=dev, dtype=dt).permute(2, 0, 1, 3)  # batch-inner rows
    delta = (torch.randn(K, D, batch, L, device=dev, dtype=dt) * 0.5).permute(2, 0, 1, 3)
    A = -torch.rand(K, D, N, device=dev).add(0.5)
    Bm = torch.randn(batch, K, 1, N, L, device=dev, dtype=dt)
    Cm = torch.randn(batch, K, 1, N, L, device=dev, dtype=dt)
    Dv = torch.randn(K, D, device=dev); bias = torch.randn(K, D, device=dev) * 0.1
    z = torch.randn(batch, L, D, device=dev, dtype=dt).transpose(1, 2).unsqueeze(1).expand(batch, K, D, L)
    dout = torch.randn(batch, L, D, device=dev, dtype=dt).transpose(1, 2)
    dlast = torch.zeros(batch, K, D, N, device=dev)
    idx = None
    res = {}
    for name, zz in (("z", z), ("noz", None)):
        f = lambda: triton_bwd.triton_backward_chunks(dout, dlast, u, delta, A, Bm, Cm, Dv, zz, bias, idx, True, 1.0)
        f(); torch.cuda.synchronize()
        res[name] = triton.testing.do_bench(f, warmup=20, rep=200)
        p = Prep(u, delta, A, Bm, Cm, Dv, zz, bias, idx, 1.0)
        T = DEFAULT_TILES.bwd_T
        nc = -(-L // T)
        g = lambda: triton_carry.run_carry_pair(p, u, dout, delta, zz, dlast, nc, T, True, DEFAULT_TILES)
        g(); torch.cuda.synchronize()
        res[name + "_carry"] = triton.testing.do_bench(g, warmup=20, rep=200)
        h = lambda: triton_fwd.triton_forward(u, delta, A, Bm, Cm, Dv, zz, bias, idx, True, 1.0)
        h(); torch.cuda.synchronize()
        res[name + "_fwd"] = triton.testing.do_bench(h, warmup=20, rep=200)
    print(f"(b{batch}, D{D}, L{L}, N{N}, K{K}) bwd(total incl carry) z {res['z']:.3f} noz {res['noz']:.3f} | "
          f"carry pair z {res['z_carry']:.3f} noz {res['noz_carry']:.3f} | fwd z {res['z_fwd']:.3f} noz {res['noz_fwd']:.3f} ms")
