"""GPU kernels of a step by name: argv model mode. ms per step and calls per step, top 35."""
import os, sys, collections
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
from torch.profiler import profile, ProfilerActivity
name, mode = sys.argv[1], sys.argv[2]
if not name.endswith("_official"):
    _env.use_project()
bs = int(os.environ.get("BS", 128)); px = int(os.environ.get("PX", 224))
m = _env.build(name, px).cuda()
step = _env.make_step(m, mode, bs, px)
for _ in range(6):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
tot = collections.Counter(); cnt = collections.Counter()
for e in prof.events():
    if e.device_type == torch.autograd.DeviceType.CUDA:
        tot[e.name[:90]] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
        cnt[e.name[:90]] += 1
s = sum(tot.values())
print(f"{name} {mode} bs{bs} px{px}: GPU ms/step {s/3e3:.2f}, kernels/step {sum(cnt.values())/3:.0f}")
for k, v in tot.most_common(35):
    print(f"{v/3e3:8.3f} ms {cnt[k]/3:6.0f}x  {k}")
