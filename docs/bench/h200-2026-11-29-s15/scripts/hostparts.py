"""Host microseconds per call of the scan op's pieces (tiny tensors: the GPU is never the bound)."""
import sys, time, torch, triton, triton.language as tl
sys.path.insert(0, ".official")
from vssm.kernels import selective_scan
from vssm.kernels.selective_scan import op as sop
from vssm.kernels.selective_scan.triton_common import Prep
from vssm.kernels.selective_scan.triton_fwd import triton_forward
dev = "cuda"
def T(name, f, n=400):
    for _ in range(20): f()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): f()
    t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
    print(f"{name:44s} issue {1e6*(t1-t0)/n:8.1f} us  wall {1e6*(t2-t0)/n:8.1f} us", flush=True)
u = torch.randn(2, 64, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
dl = torch.randn(2, 64, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
A = -torch.rand(64, 8, device=dev).add(0.5).requires_grad_()
Bm = torch.randn(2, 8, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
Cm = torch.randn(2, 8, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
Dv = torch.randn(64, device=dev).requires_grad_()
bias = torch.randn(64, device=dev).requires_grad_()
z = torch.randn(2, 64, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
ins = (u, dl, A, Bm, Cm, Dv, None, bias)
args = sop.prepare(*ins, True, None, None, "sum", None, grad=True)
@triton.jit
def _k5(a, b, c, d, e):
    pass
@triton.jit(do_not_specialize=["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9"])
def _k40(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, i0, i1, i2, i3, i4, i5, i6, i7, i8, i9,
         s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16, s17, C1: tl.constexpr, C2: tl.constexpr):
    pass
ptrs = [u] * 12
T("empty triton kernel, 5 args", lambda: _k5[(1,)](u, u, 3, 4, 5))
T("empty triton kernel, 40 args + 2 constexpr", lambda: _k40[(1,)](*ptrs, *range(10), *range(3, 21), C1=1, C2=2))
T("torch.empty", lambda: torch.empty(10, device=dev))
T("torch.zeros", lambda: torch.zeros(10, device=dev))
T("prepare", lambda: sop.prepare(*ins, True, None, None, "sum", None))
T("Prep", lambda: Prep(*args[:9]))
T("triton_forward", lambda: triton_forward(*args[:11]))
T("_scan_fwd_impl", lambda: sop._scan_fwd_impl(*args))
with torch.no_grad():
    T("selective_scan no grad", lambda: selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True))
    T("selective_scan no grad, z", lambda: selective_scan(u, dl, A, Bm, Cm, Dv, z, delta_bias=bias, delta_softplus=True))
T("selective_scan fwd with grad", lambda: selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True))
out, last, st = sop._scan_fwd_impl(*args)
dout = torch.randn_like(out); dlast = torch.zeros_like(last)
T("_scan_bwd_impl", lambda: sop._scan_bwd_impl(dout, dlast, *args[:9], st, *args[9:11], args[12]))
def fb():
    y = selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True)
    torch.autograd.backward(y, dout)
T("selective_scan fwd+bwd", fb)
try:
    import _env; _env.use_official()
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    with torch.no_grad():
        T("official selective_scan_fn no grad", lambda: selective_scan_fn(u, dl, A, Bm, Cm, Dv, None, bias, True))
    def ofb():
        y = selective_scan_fn(u, dl, A, Bm, Cm, Dv, None, bias, True)
        torch.autograd.backward(y, dout)
    T("official selective_scan_fn fwd+bwd", ofb)
except Exception as e:
    print("official:", type(e).__name__, e)
# time spent inside each kernel launch call (host), through proxies on the kernel objects
import collections
from vssm.kernels.selective_scan import triton_fwd as tf, triton_bwd as tb, triton_carry as tc
spent = collections.defaultdict(lambda: [0.0, 0])
class Proxy:
    def __init__(self, name, k): self.name, self.k = name, k
    def __getitem__(self, grid):
        def launch(*a, **kw):
            t0 = time.perf_counter(); r = self.k[grid](*a, **kw); s = spent[self.name]; s[0] += time.perf_counter() - t0; s[1] += 1
            return r
        return launch
for mod in (tf, tb, tc):
    for name in dir(mod):
        if name.startswith("_") and name.endswith("_kernel"):
            setattr(mod, name, Proxy(name, getattr(mod, name)))
u2 = torch.randn(128, 256, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
dl2 = torch.randn(128, 256, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
A2 = -torch.rand(256, 8, device=dev).add(0.5).requires_grad_()
B2 = torch.randn(128, 8, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
C2 = torch.randn(128, 8, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
D2 = torch.randn(256, device=dev).requires_grad_(); b2 = torch.randn(256, device=dev).requires_grad_()
do2 = torch.randn(128, 256, 196, device=dev, dtype=torch.bfloat16)
for shape_name, ins2, dd in (("tiny", (u, dl, A, Bm, Cm, Dv, None, bias), dout), ("MambaVision-B s3", (u2, dl2, A2, B2, C2, D2, None, b2), do2)):
    def fb2():
        y = selective_scan(*ins2, delta_softplus=True)
        torch.autograd.backward(y, dd)
    for _ in range(5): fb2()
    torch.cuda.synchronize(); spent.clear()
    t0 = time.perf_counter()
    for _ in range(50): fb2()
    t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
    print(f"{shape_name}: fwd+bwd issue {1e6*(t1-t0)/50:.1f} us wall {1e6*(t2-t0)/50:.1f} us; launches: " +
          ", ".join(f"{k} {1e6*v[0]/v[1]:.1f} us x{v[1]/50:.0f}" for k, v in spent.items()), flush=True)
