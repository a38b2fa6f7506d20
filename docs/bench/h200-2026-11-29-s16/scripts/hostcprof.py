"""Host time of one scan call (fwd + bwd, tiny tensors), ours vs mamba_ssm's selective_scan_fn: cProfile by
tottime, so the Python functions (and the autograd engine's own time) that cost show."""
import sys, time, cProfile, pstats, io, torch
sys.path.insert(0, ".official")
from vssm.kernels import selective_scan
dev = "cuda"
u = torch.randn(2, 64, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
dl = torch.randn(2, 64, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
A = -torch.rand(64, 8, device=dev).add(0.5).requires_grad_()
Bm = torch.randn(2, 8, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
Cm = torch.randn(2, 8, 49, device=dev, dtype=torch.bfloat16).requires_grad_()
Dv = torch.randn(64, device=dev).requires_grad_()
bias = torch.randn(64, device=dev).requires_grad_()
dout = torch.randn(2, 64, 49, device=dev, dtype=torch.bfloat16)
def ours():
    y = selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True)
    torch.autograd.backward(y, dout)
def T(name, f, n=400):
    for _ in range(20): f()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): f()
    t1 = time.perf_counter(); torch.cuda.synchronize()
    print(f"{name:40s} issue {1e6*(t1-t0)/n:8.1f} us", flush=True)
def prof(name, f, n=300, k=30):
    pr = cProfile.Profile(); pr.enable()
    for _ in range(n): f()
    pr.disable(); torch.cuda.synchronize()
    s = io.StringIO(); st = pstats.Stats(pr, stream=s); st.sort_stats("tottime").print_stats(k)
    print(f"==== cProfile {name} ({n} calls; divide by {n})\n" + s.getvalue(), flush=True)
fs = [("ours fwd+bwd", ours)]
try:
    import _env; _env.use_official()
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    def off():
        y = selective_scan_fn(u, dl, A, Bm, Cm, Dv, None, bias, True)
        torch.autograd.backward(y, dout)
    fs.append(("official fwd+bwd", off))
except Exception as e:
    print("official:", type(e).__name__, e)
for name, f in fs: T(name, f)
with torch.no_grad():
    T("ours no grad", lambda: selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True))
for name, f in fs: prof(name, f)
# torch.profiler view of the same (self CPU per op, incl. the autograd node and the launches)
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as p:
    for _ in range(50): ours()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
