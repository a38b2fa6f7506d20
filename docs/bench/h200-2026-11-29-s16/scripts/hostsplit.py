"""Where the host time of one scan call (fwd + bwd, tiny tensors) goes: perf_counter wrappers around the
op's Python pieces; what is left of the loop's time is the autograd engine's own (C++) work.
Beside it: a do-nothing autograd.Function with the same inputs / outputs / saved tensors (the engine's floor)."""
import sys, time, collections, functools, torch
from vssm.kernels import selective_scan
from vssm.kernels.selective_scan import op as sop, triton_common as tcm, triton_bwd as tb, triton_fwd as tf, triton_carry as tc
from vssm.kernels import launch as ln
dev = "cuda"
b_, d_, l_, n_ = (128, 160, 196, 8) if "mv3" in sys.argv else (2, 64, 49, 8)  # mv3: MambaVision-T stage 3's scan
print("shape", (b_, d_, l_, n_))
u = torch.randn(b_, d_, l_, device=dev, dtype=torch.bfloat16).requires_grad_()
dl = torch.randn(b_, d_, l_, device=dev, dtype=torch.bfloat16).requires_grad_()
A = -torch.rand(d_, n_, device=dev).add(0.5).requires_grad_()
Bm = torch.randn(b_, n_, l_, device=dev, dtype=torch.bfloat16).requires_grad_()
Cm = torch.randn(b_, n_, l_, device=dev, dtype=torch.bfloat16).requires_grad_()
Dv = torch.randn(d_, device=dev).requires_grad_()
bias = torch.randn(d_, device=dev).requires_grad_()
dout = torch.randn(b_, d_, l_, device=dev, dtype=torch.bfloat16)
leaves = (u, dl, A, Bm, Cm, Dv, bias)
def ours():
    y = selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True)
    torch.autograd.backward(y, dout)
class Null(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dl, A, B, C, D, z, b, opt):
        ctx.save_for_backward(*(t for t in (u, dl, A, B, C, D, b)), *(t for t in (u, dl, A, B, C, D, b)))
        return u.new_empty(u.shape), u.new_empty((b_, 1, d_, n_), dtype=torch.float32)
    @staticmethod
    def backward(ctx, g, gl):
        s = ctx.saved_tensors
        return s[0], s[1], s[2], s[3], s[4], s[5], None, s[6], None
def null():
    y, _ = Null.apply(u, dl, A, Bm, Cm, Dv, None, bias, None)
    torch.autograd.backward(y, dout)
def loop(f, n=400):
    for _ in range(20): f()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): f()
    t = time.perf_counter() - t0; torch.cuda.synchronize()
    return 1e6 * t / n
for g in (True, False):
    for t in leaves: t.grad = None
    print(f"ours fwd+bwd {loop(ours):8.1f} us   null Function {loop(null):8.1f} us", flush=True)
def grads_none():
    for t in leaves: t.grad = None
def ours_fresh():  # as in training: grads set to None before each backward (AccumulateGrad steals)
    grads_none(); ours()
def null_fresh():
    grads_none(); null()
print(f"grads reset each call: ours {loop(ours_fresh):8.1f} us  null {loop(null_fresh):8.1f} us  reset alone {loop(grads_none):6.1f} us", flush=True)
try:
    sys.path.insert(0, ".official"); import _env; _env.use_official()
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    def off_fresh():
        grads_none(); torch.autograd.backward(selective_scan_fn(u, dl, A, Bm, Cm, Dv, None, bias, True), dout)
    print(f"grads reset each call: mamba_ssm selective_scan_fn {loop(off_fresh):8.1f} us", flush=True)
except Exception as e:
    print("official:", type(e).__name__, e)
spent = collections.defaultdict(lambda: [0.0, 0])
def wrap(obj, name, label=None):
    f = getattr(obj, name)
    label = label or f"{getattr(obj, '__name__', type(obj).__name__)}.{name}"
    @functools.wraps(f)
    def w(*a, **k):
        t0 = time.perf_counter(); r = f(*a, **k); s = spent[label]; s[0] += time.perf_counter() - t0; s[1] += 1
        return r
    setattr(obj, name, w)
for obj, name in [(sop, "prepare"), (sop, "_scan_fwd_impl"), (sop, "_scan_bwd_impl"), (sop, "_backward"),
                  (sop, "_to_input_shape"), (tf, "triton_forward"), (tb, "triton_backward_chunks"), (tb, "run_carry_pair"),
                  (tcm.Grads, "finish"), (tcm.Grads, "__init__"), (tcm.Prep, "__init__"), (ln.FastLaunch, "_launch"),
                  (ln, "arg_key"), (tcm, "_needs_idx64"), (sop._EagerScan, "forward"), (sop._EagerScan, "backward")]:
    wrap(obj, name)
# staticmethods of the Function: rewrap as staticmethod
for name in ("forward", "backward"):
    setattr(sop._EagerScan, name, staticmethod(getattr(sop._EagerScan, name)))
spent.clear()
n = 400
tot = loop(ours_fresh, n)
print(f"wrapped loop {tot:8.1f} us per call")
for k, (s, c) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
    print(f"  {k:40s} {1e6*s/(n+20):8.1f} us per scan call  ({c/(n+20):.1f} calls)")
