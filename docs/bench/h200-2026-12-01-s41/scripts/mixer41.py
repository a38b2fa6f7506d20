"""(CPU) Host time of one Vim block's inference forward on the Triton path with launches stubbed (TRITON_INTERPRET=1,
tiny CPU tensors): min over rounds of the mean per call."""
import os, sys, time
os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("VSSM_SCAN_BACKEND", "triton")
import torch, timm
import vssm
from vssm.kernels import launch
n_launch = [0]
def stub(self, grid, args, kwargs):
    n_launch[0] += 1
launch.FastLaunch._launch = stub
import vssm.mamba as vm
vm.has_fast_kernel = lambda x: isinstance(x, torch.Tensor)
torch.set_num_threads(1)
m = timm.create_model("vim_tiny_patch16_224", img_size=64, depth=2).to(torch.bfloat16).eval()
blk = m.layers[0]
x = torch.randn(1, 17, 192, dtype=torch.float32)
def f():
    with torch.inference_mode():
        return blk(x)
for _ in range(20): f()
res = []
for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 30):
    t = time.perf_counter()
    for _ in range(50): f()
    res.append((time.perf_counter() - t) / 50 * 1e6)
res.sort()
n_launch[0] = 0; f()
print(f"block inference: min {res[0]:.1f} us, p25 {res[len(res)//4]:.1f} us per call; stubbed launches {n_launch[0]}")
