"""Host time per call (us) of the conv op and the scan op on tiny CUDA inputs (the GPU never the bound), with the
cached launch calling the compiled launcher directly against going through the compiled kernel's runner (the path
every cached launch took on Triton 3.6 before f4ec7c3). Alternating rounds in one process."""
import time, statistics
import torch
from vssm.kernels import launch
from vssm.kernels.launch import FastLaunch
from vssm.kernels.conv1d import depthwise_conv1d
from vssm.kernels.selective_scan import selective_scan
import gc
real_direct = launch._direct
def set_mode(mode):
    for o in gc.get_objects():
        if isinstance(o, FastLaunch):
            o._compiled.clear()
    launch._direct = real_direct if mode == "direct" else (lambda c: False)
dev = "cuda"
x = torch.randn(1, 16, 64, device=dev)
w = torch.randn(2, 64, 4, device=dev)
b = torch.randn(2, 64, device=dev)
u = torch.randn(1, 64, 16, device=dev, requires_grad=True)
dl = torch.rand(1, 64, 16, device=dev, requires_grad=True)
A = -torch.rand(64, 8, device=dev, requires_grad=True)
B = torch.randn(1, 8, 16, device=dev, requires_grad=True)
C = torch.randn(1, 8, 16, device=dev, requires_grad=True)
D = torch.randn(64, device=dev, requires_grad=True)
def conv():
    with torch.no_grad():
        depthwise_conv1d(x, w, b, [-3, 0], silu=True)
def scan_fwd():
    with torch.no_grad():
        selective_scan(u, dl, A, B, C, D, delta_softplus=True)
def scan_train():
    selective_scan(u, dl, A, B, C, D, delta_softplus=True).sum().backward()
def per_call(f, n):
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        f()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6
res = {}
for rnd in range(4):
    for mode in ("direct", "runner"):
        set_mode(mode)
        for name, f, n in (("conv fwd", conv, 3000), ("scan fwd", scan_fwd, 2000), ("scan fwd+bwd", scan_train, 1000)):
            for _ in range(50):
                f()
            res.setdefault((name, mode), []).append(per_call(f, n))
for (name, mode), v in res.items():
    print(f"{name:14s} {mode:7s} us/call: median {statistics.median(v):7.1f}  rounds {' '.join(f'{x:.1f}' for x in v)}")
