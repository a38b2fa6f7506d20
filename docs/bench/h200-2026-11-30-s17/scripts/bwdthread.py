"""Why the LayerNorm op's fwd+bwd costs ~450 us more host time than its pieces: time the pieces on the main
thread, on another Python thread and inside autograd's backward (the engine's device thread)."""
import time, threading, warnings, sys
import torch
import vssm.kernels.layernorm.op as op
from vssm.kernels.layernorm import layer_norm
from vssm.kernels.layernorm.triton_layernorm import triton_layer_norm_bwd, triton_layer_norm_fwd
M, C = int(sys.argv[1]) if len(sys.argv) > 1 else 6272, 768
x = torch.randn(M, C, device="cuda", requires_grad=True)
w = torch.ones(C, device="cuda", requires_grad=True); b = torch.zeros(C, device="cuda", requires_grad=True)
dy = torch.randn(M, C, device="cuda")
xd, wd = x.detach(), w.detach()
y, mu, rs = triton_layer_norm_fwd(xd, wd, b.detach(), 1e-5, torch.float32)
rawb = lambda: triton_layer_norm_bwd(dy, xd, wd, mu, rs, True, True)
alloc = lambda: (torch.empty_like(xd), torch.empty(1056, C, device="cuda"))
tsum = lambda: torch.sum(dy[:1056], dim=0)
def host(fn, n=200):
    fn(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    h = (time.perf_counter() - t) / n * 1e6; torch.cuda.synchronize(); return h
for name, fn in [("rawbwd", rawb), ("alloc", alloc), ("sum", tsum)]:
    res = []
    th = threading.Thread(target=lambda: res.append(host(fn))); th.start(); th.join()
    inbw = []
    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t): return t * 1.0
        @staticmethod
        def backward(ctx, g):
            inbw.append(host(fn, 100)); return g
    torch.autograd.grad(Probe.apply(x), [x], dy)
    print(f"{name}: host us main {host(fn):.1f}, python thread {res[0]:.1f}, inside backward {inbw[0]:.1f}")
# the op's fwd+bwd, split: forward, engine to backward entry, the backward body, exit to return
marks = {}
orig = op._ln_bwd_impl
def timed(*a):
    marks["enter"] = time.perf_counter(); r = orig(*a); marks["exit"] = time.perf_counter(); return r
op._ln_bwd_impl = timed
acc = {"fwd": 0, "to_bwd": 0, "bwd": 0, "after": 0}
n = 100
for i in range(n + 5):
    t0 = time.perf_counter(); out = layer_norm(x, w, b); t1 = time.perf_counter()
    torch.autograd.grad(out, [x, w, b], dy); t2 = time.perf_counter()
    if i >= 5:
        acc["fwd"] += t1 - t0; acc["to_bwd"] += marks["enter"] - t1; acc["bwd"] += marks["exit"] - marks["enter"]
        acc["after"] += t2 - marks["exit"]
torch.cuda.synchronize()
print("op fwd+bwd split, us per call:", {k: round(v / n * 1e6, 1) for k, v in acc.items()})
op._ln_bwd_impl = orig
torch.cuda.set_sync_debug_mode("warn")
with warnings.catch_warnings(record=True) as ws:
    warnings.simplefilter("always")
    torch.autograd.grad(layer_norm(x, w, b), [x, w, b], dy)
torch.cuda.set_sync_debug_mode(0)
print("sync warnings:", [str(wi.message)[:100] for wi in ws])
# same for F.layer_norm
acc = {"fwd": 0, "bwd": 0}
for i in range(n + 5):
    t0 = time.perf_counter(); out = torch.nn.functional.layer_norm(x, (C,), w, b); t1 = time.perf_counter()
    torch.autograd.grad(out, [x, w, b], dy); t2 = time.perf_counter()
    if i >= 5: acc["fwd"] += t1 - t0; acc["bwd"] += t2 - t1
print("F.layer_norm split, us per call:", {k: round(v / n * 1e6, 1) for k, v in acc.items()})
