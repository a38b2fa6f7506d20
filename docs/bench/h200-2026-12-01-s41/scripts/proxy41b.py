"""(CPU) cProfile of VMamba-T's _Core forward + backward on the Triton path with launches stubbed."""
import os, sys, time, cProfile, pstats
os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("VSSM_SCAN_BACKEND", "triton")
import torch
from vssm.kernels import launch
launch.FastLaunch._launch = lambda self, grid, args, kwargs: None
from vssm.ss2d import SS2D
torch.manual_seed(0)
m = SS2D(96, d_state=1, ssm_ratio=2.0, d_conv=3).to(torch.bfloat16)
x = torch.randn(2, 8, 8, 192, dtype=torch.bfloat16, requires_grad=True)
def f():
    y = m.core(x)
    y.backward(torch.ones_like(y))
for _ in range(5): f()
n = 200
t = time.process_time()
for _ in range(n): f()
print(f"core fwd+bwd: {(time.process_time()-t)/n*1e3:.3f} ms per call (CPU time)")
if "--prof" in sys.argv:
    pr = cProfile.Profile(); pr.enable()
    for _ in range(100): f()
    pr.disable(); pstats.Stats(pr).sort_stats(sys.argv[-1] if sys.argv[-1] in ("tottime", "cumulative") else "tottime").print_stats(45)
