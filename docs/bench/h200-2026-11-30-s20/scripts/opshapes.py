"""GPU time per (op, input shapes, strides-contiguity) of one step: which calls launch the time. argv: name [mode];
env IMG, BATCH, TOPK, MATCH (substring filter on op name, e.g. 'mm')."""
import os, sys, collections, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
from torch.profiler import profile, ProfilerActivity
name = sys.argv[1]; mode = sys.argv[2] if len(sys.argv) > 2 else "train"
IMG, BATCH = int(os.environ.get("IMG", "224")), int(os.environ.get("BATCH", "128"))
m = _env.build(name, IMG).cuda()
step = _env.make_step(m, mode, BATCH, IMG)
for _ in range(6): step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as p:
    for _ in range(2): step()
    torch.cuda.synchronize()
agg = collections.defaultdict(lambda: [0.0, 0, set()])
tot = 0.0
for e in p.events():
    if e.device_type != torch.autograd.DeviceType.CPU or not e.kernels:
        continue
    t = sum(k.duration for k in e.kernels) / 2e3
    key = (e.name, str(e.input_shapes)[:150])
    a = agg[key]; a[0] += t; a[1] += len(e.kernels) / 2; a[2].update(k.name[:60] for k in e.kernels)
    tot += t
match = os.environ.get("MATCH", "")
rows = sorted(((k, v) for k, v in agg.items() if match in k[0]), key=lambda kv: -kv[1][0])
print(f"{name} {mode} b{BATCH} {IMG}: GPU ms/step attributed to ops {tot:.2f}; filter '{match}' sum {sum(v[0] for _, v in rows):.2f}")
for (op, shp), (t, n, ks) in rows[:int(os.environ.get("TOPK", "25"))]:
    print(f"  {t:7.3f} ms {n:5.0f} k  {op[:40]:40s} {shp}\n           {sorted(ks)[:2]}")
