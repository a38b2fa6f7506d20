"""Python-level host profile on the device: argv[1] = 'scan' (one scan fwd+bwd at MambaVision-T stage 3, batch 2)
or a model name (a training step, batch 128, the harness's step). cProfile over N calls; top by tottime/cumtime."""
import cProfile, os, pstats, sys, time, statistics
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
what = sys.argv[1]
if what == "scan" or what == "scan_official":
    if what == "scan":
        _env.use_project()
        from vssm.kernels.selective_scan import selective_scan as fn
    else:
        _env.use_official()
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as fn
    b, d, L, n = 2, 160, 196, 8
    dev = "cuda"
    u = torch.randn(b, L, d, device=dev, dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
    xd = torch.randn(b, L, 10 + 2 * n, device=dev, dtype=torch.bfloat16, requires_grad=True)
    dt = torch.randn(b, L, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
    A = (-torch.rand(d, n, device=dev)).requires_grad_()
    D = torch.randn(d, device=dev, requires_grad=True); db = torch.randn(d, device=dev, requires_grad=True)
    def step():
        _, B, C = torch.split(xd, [10, n, n], dim=-1)
        out = fn(u, dt.transpose(1, 2), A, B.transpose(1, 2).contiguous() if what.endswith("official") else B.transpose(1, 2),
                 C.transpose(1, 2).contiguous() if what.endswith("official") else C.transpose(1, 2), D, None, db, True)
        out.sum().backward()
    N = 300
else:
    if not what.endswith("_official"):
        _env.use_project()
    m = _env.build(what).cuda()
    step = _env.make_step(m, "train", 128, 224)
    N = 20
for _ in range(10):
    step()
torch.cuda.synchronize()
ts = []
for _ in range(N):
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
torch.cuda.synchronize()
print(f"{what}: host ms per step (enqueue) median {statistics.median(ts)*1e3:.3f}")
pr = cProfile.Profile()
pr.enable()
for _ in range(N):
    step()
pr.disable()
torch.cuda.synchronize()
ps = pstats.Stats(pr); ps.sort_stats("tottime").print_stats(40); ps.sort_stats("cumtime").print_stats(60)
