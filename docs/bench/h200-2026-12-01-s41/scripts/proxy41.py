"""(CPU) Host time of Vim / VMamba steps on the Triton path with every Triton launch stubbed (TRITON_INTERPRET=1,
tiny CPU tensors): best of R rounds of n steps. argv: name img [train]."""
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
torch.set_num_threads(1)
name = sys.argv[1]; img = int(sys.argv[2]); train = "train" in sys.argv
kw = {"img_size": img} if "vim" in name else {}
m = timm.create_model(name, **kw).to(torch.bfloat16)
x = torch.randn(1, 3, img, img, dtype=torch.bfloat16)
def f():
    if train:
        m.train(); return m(x)
    with torch.inference_mode():
        return m(x)
for _ in range(5): f()
best = []
for r in range(12):
    calls["n"] = 0; n = 30
    t = time.process_time()
    for _ in range(n): f()
    best.append((time.process_time() - t) / n * 1e3)
print(f"{name} {img}px {'train fwd' if train else 'infer'}: best {min(best):.2f} median {sorted(best)[6]:.2f} ms/step, launches/step {calls['n']/n:.1f}")
