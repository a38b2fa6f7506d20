"""LayerNorm op: kernel time (profiler) vs host time per call, fwd and fwd+bwd, at VMamba-T sizes."""
import time, sys
import torch, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity
from vssm.kernels.layernorm import layer_norm
from vssm.kernels.layernorm.triton_layernorm import triton_layer_norm_bwd, triton_layer_norm_fwd

def kernels(fn, n=20):
    fn(); torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(n): fn()
        torch.cuda.synchronize()
    out = {}
    for e in p.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            out[e.name[:40]] = out.get(e.name[:40], 0) + e.device_time / n
    return out

def host(fn, n=50):
    fn(); torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n): fn()
    h = (time.perf_counter() - t) / n * 1e6
    torch.cuda.synchronize()
    return h

SZ = [(401408, 96), (100352, 192), (25088, 384), (6272, 768)]
for M, C in (SZ if len(sys.argv) < 2 else [SZ[int(i)] for i in sys.argv[1].split(",")]):
    for xd, od in [(torch.float32, torch.float32), (torch.float32, torch.bfloat16)]:
        x = torch.randn(M, C, device="cuda", dtype=xd, requires_grad=True)
        w = torch.ones(C, device="cuda", requires_grad=True); b = torch.zeros(C, device="cuda", requires_grad=True)
        dy = torch.randn(M, C, device="cuda", dtype=od)
        fwd = lambda: layer_norm(x, w, b, out_dtype=od)
        fb = lambda: torch.autograd.grad(fwd(), [x, w, b], dy)
        y, st = triton_layer_norm_fwd(x.detach(), w.detach(), b.detach(), 1e-5, od)
        rawb = lambda: triton_layer_norm_bwd(dy, x.detach(), w.detach(), b.detach(), st)
        ref = lambda: torch.autograd.grad(F.layer_norm(x, (C,), w, b).to(od), [x, w, b], dy)
        with torch.no_grad():
            hf = host(fwd)
        print(f"{M}x{C} {xd}->{od}: host us fwd {hf:.0f} fwd+bwd {host(fb):.0f} rawbwd {host(rawb):.0f} ref fwd+bwd {host(ref):.0f}")
        for name, fn in [("op fwd+bwd", fb), ("ref fwd+bwd", ref)]:
            k = kernels(fn)
            print(f"   {name} kernels us: total {sum(k.values()):.1f} " + ", ".join(f"{n}={v:.1f}" for n, v in sorted(k.items(), key=lambda kv: -kv[1])[:6]))
        sys.stdout.flush()
