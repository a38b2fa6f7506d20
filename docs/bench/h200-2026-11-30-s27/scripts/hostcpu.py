"""CPU proxy of the host cost: Triton launches stubbed (TRITON_INTERPRET=1, nothing runs), tiny tensors.
python .gpu/hostcpu.py [scan|proj|vim|count]"""
import os, sys, time, statistics
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("VSSM_SCAN_BACKEND", "triton")
import torch
import triton.runtime.interpreter as ti
import kernels.launch as kl

LAUNCHES = [0]
def _noop_launch(self, grid, args, kwargs):
    LAUNCHES[0] += 1
    kl._split(args); kl._keywords_key(kwargs)   # the cached path's own work
    return None
kl.FastLaunch._launch = _noop_launch
def _getitem(self, grid):
    def run(*a, **k):
        LAUNCHES[0] += 1
    return run
ti.InterpretedFunction.__getitem__ = _getitem

from vssm.kernels.selective_scan import selective_scan
from vssm.kernels.selective_scan.projected import projected_scan

def bench(fn, n=300, reps=7):
    for _ in range(20): fn()
    res = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n): fn()
        res.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(res)

def proj_case(batch=2, K=2, dim=64, L=17, N=16, R=4):
    u = torch.randn(batch, L, dim).transpose(1, 2).unsqueeze(1).expand(batch, K, dim, L).requires_grad_(False)
    u0 = torch.randn(batch, L, K * dim, requires_grad=True)
    wx = torch.randn(K, R + 2 * N, dim, requires_grad=True)
    wdt = torch.randn(K, dim, R, requires_grad=True)
    A = -torch.rand(K, dim, N).requires_grad_()
    D = torch.randn(K, dim, requires_grad=True); db = torch.randn(K, dim, requires_grad=True)
    z = torch.randn(batch, L, dim, requires_grad=True)
    def step():
        uu = u0.view(batch, L, K, dim).permute(0, 2, 3, 1)
        out = projected_scan(uu, wx, wdt, A, D, z.transpose(1, 2), db, delta_softplus=True, orders=["natural", "reverse"])
        out.backward(torch.ones_like(out))
    return step

def scan_case(batch=2, dim=64, L=17, N=8):
    u = torch.randn(batch, dim, L, requires_grad=True); dt = torch.randn(batch, dim, L, requires_grad=True)
    A = -torch.rand(dim, N).requires_grad_(); B = torch.randn(batch, 1, N, L, requires_grad=True)
    C = torch.randn(batch, 1, N, L, requires_grad=True); D = torch.randn(dim, requires_grad=True)
    db = torch.randn(dim, requires_grad=True)
    def step():
        out = selective_scan(u, dt, A, B, C, D, None, db, True)
        out.backward(torch.ones_like(out))
    return step

def count(step):
    from torch.profiler import profile, ProfilerActivity
    step()
    LAUNCHES[0] = 0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ka = prof.key_averages()
    top = [e for e in ka if e.key.startswith("aten::")]
    print("launches", LAUNCHES[0])
    print(prof.key_averages().table(sort_by="count", row_limit=40))

if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    cases = dict(proj=proj_case, scan=scan_case)
    for name, mk in cases.items():
        if what in ("all", name):
            print(f"{name}: {bench(mk()):.1f} us per fwd+bwd")
        if what == "count" + name:
            count(mk())

def vim_case(depth=4, dim=64, img=32):
    import timm, vssm.models  # noqa
    import vssm.mamba as vm
    vm.has_fast_kernel = lambda x: isinstance(x, torch.Tensor)
    m = timm.create_model("vim_tiny_patch16_224", img_size=img, depth=depth, embed_dim=dim, num_classes=10)
    m.train()
    x = torch.randn(2, 3, img, img); y = torch.randint(0, 10, (2,))
    def step():
        loss = torch.nn.functional.cross_entropy(m(x), y)
        m.zero_grad(set_to_none=True)
        loss.backward()
    return step

if __name__ == "__main__" and sys.argv[1:2] in (["vim"], ["countvim"]):
    st = vim_case()
    if sys.argv[1] == "vim":
        print(f"vim depth 4: {bench(st, n=30):.1f} us per step")
    else:
        count(st)
