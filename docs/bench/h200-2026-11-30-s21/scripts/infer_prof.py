"""Vim inference (eval, bf16 autocast, batch 128 at 224; Vim-Ti also batch 8 at 1248) in one process, the
mixer's default (token-major, walking forward where `scan_walks` says so) against channel-major + chunk kernel
(`vssm.mamba.scan_walks` patched to False): wall ms per batch (CUDA events, 20 batches after 5), and from
torch.profiler over 3 batches: GPU ms per batch (sum of kernel times), launches per batch, the scan forward's
and the gate's kernels."""
import collections, time
import torch, timm
import vssm, vssm.mamba as mm
from torch.profiler import ProfilerActivity, profile
orig = mm.scan_walks
def step(m, x):
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        return m(x)
for name, batch, res in [("vim_small_patch16_224", 128, 224), ("vim_tiny_patch16_224", 128, 224)]:
    m = timm.create_model(name).cuda().eval()
    x = torch.randn(batch, 3, res, res, device="cuda")
    for mode in ("walk", "chunk", "walk"):
        mm.scan_walks = orig if mode == "walk" else (lambda *a: False)
        for _ in range(5):
            step(m, x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            step(m, x)
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / 20 * 1e3
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                step(m, x)
            torch.cuda.synchronize()
        per = collections.Counter(); n = 0; tot = 0.0
        for e in prof.events():
            if e.device_type == torch.autograd.DeviceType.CUDA:
                n += 1; tot += e.device_time; per[e.name] += e.device_time
        scan = sum(v for k, v in per.items() if "_fwd_walk_kernel" in k or "_fwd_kernel" in k) / 3e3
        gate = sum(v for k, v in per.items() if "_gate_fwd" in k) / 3e3
        top = ", ".join(f"{k[:40]} {v / 3e3:.2f}" for k, v in per.most_common(6))
        print(f"{name} b{batch}@{res} {mode}: wall {wall:.2f} ms ({batch / wall * 1e3:.0f} img/s), GPU {tot / 3e3:.2f} ms, "
              f"launches {n / 3:.0f}, scan fwd {scan:.2f} ms, gate {gate:.2f} ms | top: {top}", flush=True)
    mm.scan_walks = orig
    del m
