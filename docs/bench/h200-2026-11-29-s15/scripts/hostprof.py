"""Host (Python) cost of the scan op and of MambaVision-B's mixer, fwd + bwd: cProfile + issue time."""
import cProfile, pstats, io, time, sys, torch
from vssm.models.mambavision import MambaVisionMixer
from vssm.kernels import selective_scan
torch.manual_seed(0)
mx = MambaVisionMixer(512, d_state=8, d_conv=3).cuda()
x = torch.randn(128, 196, 512, device="cuda", requires_grad=True)
def mixer_step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = mx(x)
    y.sum().backward()
# the op alone on tiny tensors (GPU time ~ nothing): host-bound by construction
u = torch.randn(2, 64, 49, device="cuda", dtype=torch.bfloat16).requires_grad_()
dl = torch.randn(2, 64, 49, device="cuda", dtype=torch.bfloat16).requires_grad_()
A = -torch.rand(64, 8, device="cuda").add(0.5).requires_grad_()
Bm = torch.randn(2, 8, 49, device="cuda", dtype=torch.bfloat16).requires_grad_()
Cm = torch.randn(2, 8, 49, device="cuda", dtype=torch.bfloat16).requires_grad_()
Dv = torch.randn(64, device="cuda").requires_grad_()
bias = torch.randn(64, device="cuda").requires_grad_()
def op_step():
    y = selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True)
    y.sum().backward()
def op_fwd():
    with torch.no_grad():
        selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True)
for name, f in (("op fwd (no grad)", op_fwd), ("op fwd+bwd", op_step), ("mixer B s3 fwd+bwd", mixer_step)):
    for _ in range(5): f()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(50): f()
    t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
    print(f"{name}: issue {1e3*(t1-t0)/50:.3f} ms/iter, wall {1e3*(t2-t0)/50:.3f} ms/iter", flush=True)
    pr = cProfile.Profile(); pr.enable()
    for _ in range(50): f()
    pr.disable(); torch.cuda.synchronize()
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(30); print(s.getvalue()[-9000:])
