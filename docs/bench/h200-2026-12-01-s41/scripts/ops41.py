"""(CPU) aten ops per training forward (+backward) of a model on the Triton path with launches stubbed, by name."""
import os, sys, collections
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
name = sys.argv[1]; img = int(sys.argv[2]); bwd = "bwd" in sys.argv
m = timm.create_model(name).train()
x = torch.randn(2, 3, img, img)
from torch.profiler import profile, ProfilerActivity
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    if bwd:
        out.float().sum().backward()
step()
calls["n"] = 0
with profile(activities=[ProfilerActivity.CPU]) as prof:
    step()
c = collections.Counter()
for e in prof.events():
    if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")):
        c[e.name] += 1
print(f"{name}: top-level aten ops {sum(c.values())}, stubbed Triton launches {calls['n']}")
for k, v in c.most_common(40):
    print(f"  {v:5d} {k}")
