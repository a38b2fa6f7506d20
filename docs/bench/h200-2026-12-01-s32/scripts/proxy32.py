"""(CPU) Host time of whole-model inference on the fast (Triton) path: TRITON_INTERPRET=1, every Triton launch
stubbed, torch ops on tiny CPU tensors. Per-layer Python cost and its cProfile split."""
import os, sys, time
os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("VSSM_SCAN_BACKEND", "triton")
import torch, timm
import vssm
from vssm.kernels import launch
calls = {"n": 0}
def stub(self, grid, args, kwargs):
    calls["n"] += 1
launch.FastLaunch._launch = stub
import vssm.mamba as vm
vm.has_fast_kernel = lambda x: isinstance(x, torch.Tensor)
name = sys.argv[1] if len(sys.argv) > 1 else "vim_tiny_patch16_224"
img = int(sys.argv[2]) if len(sys.argv) > 2 else 64
train = len(sys.argv) > 3 and sys.argv[3] == "train"
m = timm.create_model(name, img_size=img).to(torch.bfloat16)
x = torch.randn(1, 3, img, img, dtype=torch.bfloat16)
def f():
    if train:
        m.train(); out = m(x); return out
    with torch.inference_mode():
        return m(x)
for _ in range(5): f()
calls["n"] = 0
n = 40
t = time.perf_counter()
for _ in range(n): f()
dt = (time.perf_counter() - t) / n
print(f"{name} {img}px {'train fwd' if train else 'infer'}: {dt*1e3:.2f} ms/step, stubbed launches/step {calls['n']/n:.1f}")
if "--prof" in sys.argv:
    import cProfile, pstats
    pr = cProfile.Profile(); pr.enable()
    for _ in range(20): f()
    pr.disable(); pstats.Stats(pr).sort_stats("tottime").print_stats(35)
