"""Host and GPU profile of one MambaVision training step (bf16, batch 128): python mvprof.py NAME."""
import sys, torch
sys.path.insert(0, ".official")
import _env
from torch.profiler import profile, ProfilerActivity
name = sys.argv[1]
m = _env.build(name).cuda()
step = _env.make_step(m, "train", 128, 224)
for _ in range(8): step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
    for _ in range(3): step()
    torch.cuda.synchronize()
ev = [e for e in p.events() if e.device_type == torch.autograd.DeviceType.CUDA]
print(name, "GPU kernels per step", len(ev) / 3, "GPU ms per step", sum(e.time_range.elapsed_us() for e in ev) / 3e3)
ka = p.key_averages()
print(ka.table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
print(ka.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=70))
