"""The projected scan's seven projections at Vim shapes (bf16, K 2, batch-inner channel-major), batched over the
directions (bmm) against one 2-D matmul per direction (mm), us (do_bench medians); then add_direction_sum tiles."""
import os, sys
import torch
from triton.testing import do_bench
import vssm  # noqa
from vssm.kernels.layout import new_rows, direction_matrices, token_matrix

def per_dir(fn_2d, *ts):
    for k in range(ts[0].shape[0]):
        fn_2d(*[t[k] for t in ts])

def bench(f):
    return do_bench(f, warmup=25, rep=200) * 1e3

for name, B, E, L, R, N in [("Vim-Ti", 128, 384, 197, 12, 16), ("Vim-S", 128, 768, 197, 24, 16)]:
    like = torch.empty(0, device="cuda", dtype=torch.bfloat16)
    def rows(M):
        return direction_matrices(new_rows(like, (B, 2, M, L), batch_inner=True).normal_())
    u, xd, dl = rows(E), rows(R + 2 * N), rows(E)
    wx = torch.randn(2, R + 2 * N, E, device="cuda", dtype=torch.bfloat16) * 0.05
    wdt = torch.randn(2, E, R, device="cuda", dtype=torch.bfloat16) * 0.05
    dt = xd[:, :R]
    dxd, ddl, du = rows(R + 2 * N), rows(E), rows(E)
    ops = {
        "x_dbl = Wx u": (lambda: torch.bmm(wx, u, out=xd), lambda: per_dir(lambda w, a, o: torch.mm(w, a, out=o), wx, u, xd)),
        "delta = Wdt dt": (lambda: torch.bmm(wdt, dt, out=dl), lambda: per_dir(lambda w, a, o: torch.mm(w, a, out=o), wdt, dt, dl)),
        "d dt = Wdt^T ddelta": (lambda: torch.bmm(wdt.transpose(1, 2), ddl, out=dxd[:, :R]),
                                lambda: per_dir(lambda w, a, o: torch.mm(w, a, out=o), wdt.transpose(1, 2), ddl, dxd[:, :R])),
        "dWdt = ddelta dt^T": (lambda: torch.bmm(ddl, dt.transpose(1, 2)),
                               lambda: [torch.mm(ddl[k], dt[k].t()) for k in range(2)]),
        "dWx = dxdbl u^T": (lambda: torch.bmm(dxd, u.transpose(1, 2)),
                            lambda: [torch.mm(dxd[k], u[k].t()) for k in range(2)]),
        "du += Wx^T dxdbl": (lambda: du.baddbmm_(wx.transpose(1, 2), dxd),
                             lambda: per_dir(lambda w, a, o: o.addmm_(w, a), wx.transpose(1, 2), dxd, du)),
    }
    tot = [0.0, 0.0]
    for op, (fb, fm) in ops.items():
        tb, tm = bench(fb), bench(fm)
        tot[0] += tb; tot[1] += tm
        print(f"{name} {op:22s} bmm {tb:7.1f} us  mm x2 {tm:7.1f} us", flush=True)
    print(f"{name} total (delta twice) bmm {tot[0] + bench(ops['delta = Wdt dt'][0]):.1f} mm {tot[1] + bench(ops['delta = Wdt dt'][1]):.1f}", flush=True)

from vssm.kernels.selective_scan import direction_sum_triton as dst
print("add_direction_sum tiles (VMamba-T shapes, bf16 token-major), us:")
for D, L in [(96, 3136), (192, 784), (384, 196), (768, 49)]:
    src = torch.randn(128, 4, L, D, device="cuda", dtype=torch.bfloat16).transpose(2, 3)
    d = torch.randn(128, L, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    gb = (src.numel() + 2 * d.numel()) * 2 / 1e3
    line = []
    for bd, bl, w in [(128, 32, 4), (64, 64, 4), (32, 128, 4), (64, 32, 4), (128, 16, 4), (128, 64, 8), (256, 16, 4), (32, 64, 4), (64, 128, 8)]:
        t = bench(lambda: dst.launch(d, src, bd, bl, w))
        line.append(f"{bd}x{bl}/{w} {t:.1f} ({gb / t:.2f})")
    print(f"  D {D} L {L}: " + ", ".join(line), flush=True)
