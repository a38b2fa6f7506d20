"""(CPU) Inclusive host time of the pieces of one Vim block's inference forward (launches stubbed, TRITON_INTERPRET=1):
each piece wrapped with a perf_counter pair; min over rounds of the mean per call."""
import os, sys, time, collections
os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("VSSM_SCAN_BACKEND", "triton")
import torch, timm
import vssm
from vssm.kernels import launch
launch.FastLaunch._launch = lambda self, grid, args, kwargs: None
import vssm.mamba as vm
import sys as _s; pj = _s.modules["vssm.kernels.selective_scan.projected"]
op = _s.modules["vssm.kernels.selective_scan.op"]
import vssm.kernels.selective_scan.triton_fwd; tf = _s.modules["vssm.kernels.selective_scan.triton_fwd"]
vm.has_fast_kernel = lambda x: isinstance(x, torch.Tensor)
torch.set_num_threads(1)
acc = collections.defaultdict(float)
def wrap(ns, name, label):
    f = getattr(ns, name)
    def w(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            acc[label] += time.perf_counter() - t
    setattr(ns, name, w)
wrap(vm, "conv_scan_directions", "conv_scan_directions")
wrap(pj, "_split_forward", "  _split_forward")
wrap(pj, "prepare", "    prepare")
wrap(tf, "triton_forward", "    triton_forward")
wrap(pj, "_conv_project_into", "  _conv_project_into")
wrap(vm.Mamba, "_direction_params", "_direction_params")
wrap(vm.Mamba, "_direction_inputs", "_direction_inputs")
wrap(vm, "scan_walks", "scan_walks")
wrap(vm.Mamba, "_residual_out", "_residual_out")
wrap(vm.Mamba, "_in_proj", "_in_proj")
wrap(vm.Mamba, "_fused_residual", "_fused_residual")
wrap(vm.Mamba, "mix", "mix")
wrap(vm.Mamba, "forward", "Mamba.forward")
m = timm.create_model("vim_tiny_patch16_224", img_size=64, depth=2).to(torch.bfloat16).eval()
blk = m.layers[0]
x = torch.randn(1, 17, 192)
def f():
    with torch.inference_mode():
        return blk(x)
for _ in range(50): f()
best = None
for r in range(40):
    acc.clear()
    t = time.perf_counter()
    for _ in range(50): f()
    tot = (time.perf_counter() - t) / 50
    snap = {k: v / 50 for k, v in acc.items()}
    if best is None or tot < best[0]:
        best = (tot, snap)
print(f"block: {best[0]*1e6:.1f} us (best round)")
for k, v in sorted(best[1].items(), key=lambda kv: -kv[1]):
    print(f"  {k:28s} {v*1e6:7.1f} us")
