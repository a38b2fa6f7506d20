"""Inference with and without the parameter cache (`vssm.param_cache`): the tree from PYTHONPATH, one process per
tree, alternating. Per row: bench_one (bf16, the harness's protocol), the host's enqueue time of one step (synchronized
before, median of 20) and the GPU ops of one step (torch.profiler). argv: tag."""
import os, statistics, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
import vssm  # noqa
from torch.profiler import ProfilerActivity, profile
ROWS = [("vim_small_patch16_224", 224, 128), ("vim_tiny_patch16_224", 1248, 8), ("mambavision_t", 224, 128),
        ("vim_tiny_patch16_224", 224, 128)]
for name, px, bs in ROWS:
    m = _env.build(name, px).cuda() if name.startswith("vim") else _env.build(name).cuda()
    r = _env.bench_one(m, "infer", px, bs, 10, 30)
    step = _env.make_step(m, "infer", bs, px)
    host = []
    for _ in range(20):
        torch.cuda.synchronize(); t0 = time.perf_counter(); step(); host.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(); torch.cuda.synchronize()
    gpu_ops = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    print(sys.argv[1], name, px, bs, {k: round(v, 3) for k, v in r.items()},
          "host_ms", round(statistics.median(host) * 1e3, 2), "gpu_ops", gpu_ops, flush=True)
    del m; torch.cuda.empty_cache()
