"""Prepared for the next GPU session (not run): host time of one launch of the scan's forward kernel at a
MambaVision shape, through Triton's path and the fast launch, beside empty kernels of 5 / 40 / 60 arguments,
each timed alone (no other work in the loop), so the part of a launch that is not argument binding shows."""
import os, time, torch, triton, triton.language as tl
from vssm.kernels.launch import fast_launch
from vssm.kernels.selective_scan import triton_fwd
from vssm.kernels.selective_scan.op import prepare

@triton.jit
def _k5(a, b, c, d, e):
    pass

@triton.jit
def _k60(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10,
         s11, s12, s13, s14, s15, s16, s17, s18, s19, s20, s21, s22, s23, s24, s25, s26, s27, s28, s29, s30, s31,
         s32, s33, s34, s35, s36, s37, s38, s39, s40, s41, s42, s43, s44, s45, s46):
    pass

def per_call(f, n=2000):
    for _ in range(50): f()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): f()
    t = (time.perf_counter() - t0) / n; torch.cuda.synchronize()
    return 1e6 * t

x = torch.zeros(1024, device="cuda")
fast60 = fast_launch(_k60)
args60 = [x] * 13 + list(range(3, 50))
print("empty 5 args, Triton path   ", round(per_call(lambda: _k5[(1,)](x, x, 3, 4, 5)), 1), "us")
print("empty 60 args, Triton path  ", round(per_call(lambda: _k60[(1,)](*args60)), 1), "us")
print("empty 60 args, fast launch  ", round(per_call(lambda: fast60[(1,)](*args60)), 1), "us")
# the scan's forward kernel alone, with the arguments triton_forward passes, captured once
captured = {}
real = triton_fwd._fwd_kernel
class Capture:
    def __getitem__(self, grid):
        def run(*a, **k):
            captured.update(grid=grid, args=a, kwargs=k)
            return real[grid](*a, **k)
        return run
triton_fwd._fwd_kernel = Capture()
u = torch.randn(128, 256, 196, device="cuda", dtype=torch.bfloat16)
A = -torch.rand(256, 8, device="cuda") - 0.5
B = torch.randn(128, 8, 196, device="cuda", dtype=torch.bfloat16)
args = prepare(u, u.clone(), A, B, B.clone(), torch.ones(256, device="cuda"), None, torch.zeros(256, device="cuda"),
               True, None, None, "sum", "triton", grad=False)
triton_fwd.triton_forward(*args[:11])
triton_fwd._fwd_kernel = real
g, a, k = captured["grid"], captured["args"], captured["kwargs"]
print("scan forward kernel, fast   ", round(per_call(lambda: real[g](*a, **k), n=500), 1), "us (GPU-bound if near its kernel time)")
os.environ["VSSM_FAST_LAUNCH"] = "0"
print("scan forward kernel, Triton ", round(per_call(lambda: real[g](*a, **k), n=500), 1), "us")
