"""Vim-Ti inference at 1024 and 1248 px, batch 8 (bf16, inference_mode): CUDA kernel time per batch by kernel
(torch.profiler over 5 batches after 10 warm-up), to see why 1024 (4097 tokens) takes longer than 1248 (6085)."""
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
from torch.profiler import ProfilerActivity, profile
_env.use_project()
for px in (1024, 1248):
    m = _env.build("vim_tiny_patch16_224", px).cuda()
    step = _env.make_step(m, "infer", 8, px)
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    print(f"=== {px}px batch 8, per batch")
    rows = [(e.key, e.device_time_total / 5e3, e.count / 5) for e in prof.key_averages() if e.device_time_total > 0
            and e.device_type == torch.autograd.DeviceType.CUDA]
    rows.sort(key=lambda r: -r[1])
    print(f"total CUDA ms {sum(r[1] for r in rows):.2f}")
    for k, ms, n in rows[:14]:
        print(f"{ms:8.3f} ms {n:6.0f}x  {k[:110]}")
    del m; torch.cuda.empty_cache()
