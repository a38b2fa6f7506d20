"""Stop 27 A/B on the GPU.
K: add_direction_sum against du.sum(1) + add at VMamba-T's SS2D shapes; the projected scan's matmuls batched over
   the directions against one 2-D matmul per direction at Vim-S / Vim-Ti shapes (do_bench, bf16, checks).
T: training steps alternating in one process, new (default) against the previous code (monkeypatched back), the
   harness's protocol (bf16 autocast, batch 128 at 224, AdamW, a sync per step): host ms fwd / bwd / opt and wall."""
import os, sys, time, statistics
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch, torch.nn as nn
from triton.testing import do_bench
_env.use_project()
import vssm  # noqa
from vssm.kernels.selective_scan import projected as pj
from vssm.kernels.selective_scan.direction_sum import add_direction_sum
from vssm.kernels.layout import token_matrix
from vssm import ss2d

def old_bmm_into(w, x, out, accumulate=False):
    batch = x.shape[0]
    for k in range(w.shape[0]):
        x2, out2 = token_matrix(x[:, k]), token_matrix(out[:, k])
        if x2 is not None and out2 is not None:
            if accumulate:
                out2.addmm_(w[k], x2)
            else:
                torch.mm(w[k], x2, out=out2)
            continue
        wk = w[k].expand(batch, *w.shape[1:])
        if accumulate:
            out[:, k].baddbmm_(wk, x[:, k])
        else:
            torch.bmm(wk, x[:, k], out=out[:, k])
    return out

def old_weight_grad(dy, x, dtype):
    mats = [(token_matrix(dy[:, k]), token_matrix(x[:, k])) for k in range(dy.shape[1])]
    if all(a is not None and b is not None for a, b in mats):
        res = dy.new_empty((dy.shape[1], dy.shape[2], x.shape[2]))
        for k, (a, b) in enumerate(mats):
            torch.mm(a, b.t(), out=res[k])
        return res.to(dtype)
    return torch.matmul(dy, x.transpose(-1, -2)).sum(0, dtype=torch.float32).to(dtype)

def old_add(dest, src, use_triton):
    dest += src.sum(1)
    return dest

NEW = dict(b=pj._bmm_into, w=pj._weight_grad, a=ss2d.add_direction_sum)
def use(mode):
    new = mode == "new"
    pj._bmm_into = NEW["b"] if new else old_bmm_into
    pj._weight_grad = NEW["w"] if new else old_weight_grad
    ss2d.add_direction_sum = NEW["a"] if new else old_add

what = sys.argv[1]
if what == "K":
    torch.manual_seed(0)
    print("add_direction_sum, VMamba-T SS2D shapes (batch 128, K 4, bf16, token-major):")
    for D, L in [(96, 3136), (192, 784), (384, 196), (768, 49)]:
        src = torch.randn(128, 4, L, D, device="cuda", dtype=torch.bfloat16).transpose(2, 3)
        dest0 = torch.randn(128, L, D, device="cuda", dtype=torch.bfloat16)
        ref = dest0.double() + src.double().sum(1).transpose(1, 2)
        got = dest0.clone(); add_direction_sum(got.transpose(1, 2), src, True)
        old = dest0.clone(); old += src.sum(1).transpose(1, 2)
        e_new = ((got.double() - ref).abs().max() / ref.abs().max()).item()
        e_old = ((old.double() - ref).abs().max() / ref.abs().max()).item()
        d = dest0.clone()
        t_new = do_bench(lambda: add_direction_sum(d.transpose(1, 2), src, True), warmup=25, rep=200)
        t_old = do_bench(lambda: d.add_(src.sum(1).transpose(1, 2)), warmup=25, rep=200)
        gb = (src.numel() + 2 * d.numel()) * 2 / 1e9
        print(f"  D {D} L {L}: new {t_new*1e3:.1f} us ({gb / t_new:.2f} TB/s), old {t_old*1e3:.1f} us; err new {e_new:.1e} old {e_old:.1e}", flush=True)
    print("projected matmuls, Vim shapes (bf16, K 2, batch-inner channel-major u):")
    from vssm.kernels.layout import new_rows
    for name, B, E, L, R, N in [("Vim-S", 128, 768, 197, 24, 16), ("Vim-Ti", 128, 384, 197, 12, 16)]:
        u = new_rows(torch.empty(0, device="cuda", dtype=torch.bfloat16), (B, 2, E, L), batch_inner=True).normal_()
        wx = torch.randn(2, R + 2 * N, E, device="cuda", dtype=torch.bfloat16) * 0.05
        for label, fn in (("new", NEW["b"]), ("old", old_bmm_into)):
            out = new_rows(u, (B, 2, R + 2 * N, L), batch_inner=True)
            fn(wx, u, out)
            ref = torch.einsum("kmp,bkpl->bkml", wx.float(), u.float())
            err = ((out.float() - ref).abs().max() / ref.abs().max()).item()
            t = do_bench(lambda: fn(wx, u, out), warmup=25, rep=200)
            dy = new_rows(u, (B, 2, R + 2 * N, L), batch_inner=True).normal_()
            wfn = NEW["w"] if label == "new" else old_weight_grad
            gw = wfn(dy, u, torch.float32)
            gref = torch.einsum("bkml,bkpl->kmp", dy.float(), u.float())
            gerr = ((gw - gref).abs().max() / gref.abs().max()).item()
            tw = do_bench(lambda: wfn(dy, u, torch.float32), warmup=25, rep=200)
            print(f"  {name} {label}: x_proj {t*1e3:.1f} us (err {err:.1e}), dW_x {tw*1e3:.1f} us (err {gerr:.1e})", flush=True)
else:
    rounds = int(os.environ.get("ROUNDS", 6))
    for name in sys.argv[2:]:
        m = _env.build(name).cuda().train()
        x = torch.randn(128, 3, 224, 224, device="cuda")
        y = torch.randint(0, 10, (128,), device="cuda")
        opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
        def step():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = nn.functional.cross_entropy(m(x).float(), y)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            torch.cuda.synchronize()
            return [t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t0]
        res = {"new": [], "old": []}
        for mode in res:
            use(mode)
            for _ in range(5):
                step()
        for rnd in range(rounds):
            for mode in (("new", "old") if rnd % 2 == 0 else ("old", "new")):
                use(mode)
                res[mode] += [step() for _ in range(10)]
        for mode, rows in res.items():
            med = [statistics.median(c) * 1e3 for c in zip(*rows)]
            print(f"{name} {mode} host ms fwd {med[0]:.2f} bwd {med[1]:.2f} opt {med[2]:.2f} | wall {med[3]:.2f} "
                  f"(img/s {128e3 / med[3]:.1f}, {len(rows)} steps)", flush=True)
        use("new")
        del m, opt
        torch.cuda.empty_cache()
