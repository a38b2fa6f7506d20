"""Vim-Ti inference, batch 8, at 1024 and 1248 px: host enqueue time per batch (synchronized before; median of 10)
and the CUDA runtime calls that wait (synchronize / D2H memcpy) or allocate, per batch (torch.profiler, CPU side)."""
import os, statistics, sys, time
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
    host = []
    for _ in range(10):
        torch.cuda.synchronize(); t0 = time.perf_counter(); step(); host.append(time.perf_counter() - t0)
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(10):
        step()
    torch.cuda.synchronize(); wall = (time.perf_counter() - t0) / 10
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    rt = {}
    for e in prof.key_averages():
        k = e.key
        if k.startswith("cuda") and ("ynchron" in k or "Memcpy" in k or "Malloc" in k or "Free" in k or "Query" in k):
            rt[k] = (e.count / 3, round(e.cpu_time_total / 3e3, 2))
    print(px, "host_enqueue_ms", round(statistics.median(host) * 1e3, 2), "wall_ms", round(wall * 1e3, 2), rt, flush=True)
    del m; torch.cuda.empty_cache()
