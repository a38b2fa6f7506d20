"""(CPU, not the device; `python proxy31.py` from the checkout) Python host time of the projected scan's inference path on CPU tensors: Triton path under the interpreter with
every kernel launch stubbed (the launches' own host time excluded)."""
import os, time, sys
os.environ["TRITON_INTERPRET"] = "1"
import torch
import vssm
from vssm.kernels import launch
from vssm.kernels.selective_scan import projected, op
calls = {"n": 0}
def stub(self, grid, args, kwargs):
    calls["n"] += 1
launch.FastLaunch._launch = stub
import triton.runtime.interpreter as ti
b, K, D, L, N, R = 8, 2, 384, 6085, 16, 12
u = torch.randn(b, L, K, D).bfloat16().permute(0, 2, 3, 1)  # token-major-ish
u = torch.randn(K, D, b, L).bfloat16().permute(2, 0, 1, 3)  # channel-major batch-inner
wx = torch.randn(K, R + 2 * N, D).bfloat16(); wdt = torch.randn(K, D, R).bfloat16()
A = -torch.rand(K, D, N); Dp = torch.rand(K, D); db = torch.rand(K, D)
z = torch.randn(b, L, D).bfloat16().transpose(1, 2)
os.environ["VSSM_SCAN_BACKEND"] = "triton"
def f():
    with torch.inference_mode():
        return projected.projected_scan_directions(u, wx, wdt, A, Dp, z, db, delta_softplus=True,
                                                   orders=["natural", "reverse"], combine="mean")
# matmuls on CPU would dominate: stub them too
real_bmm = torch.bmm
projected._bmm_into = lambda w, x, out, accumulate=False: out
for _ in range(50): f()
t = time.perf_counter(); n = 500
for _ in range(n): f()
print(f"projected_scan_directions python: {(time.perf_counter()-t)/n*1e6:.1f} us/call, launches/call {calls['n']/(n+50):.1f}")
import cProfile, pstats
pr = cProfile.Profile(); pr.enable()
for _ in range(200): f()
pr.disable(); pstats.Stats(pr).sort_stats("cumulative").print_stats(40)
