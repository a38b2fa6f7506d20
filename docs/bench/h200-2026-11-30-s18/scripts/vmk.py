"""One model's training (or inference) step (bf16, batch 128 at 224 unless BATCH / IMG say otherwise): median step ms (CUDA events), its kernels by GPU time and
(PROF_CPU=1) the host time of the backward nodes and of the forward's modules."""
import os, sys, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
from torch.profiler import profile, ProfilerActivity
name = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "train"
m = _env.build(name, int(os.environ.get("IMG", "224"))).cuda()
IMG, BATCH = int(os.environ.get("IMG", "224")), int(os.environ.get("BATCH", "128"))
step = _env.make_step(m, mode, BATCH, IMG)
for _ in range(8): step()
torch.cuda.synchronize()
ts = []
for _ in range(20):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record(); step(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
ts.sort()
acts = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if os.environ.get("PROF_CPU") == "1" else [])
with profile(activities=acts) as p:
    for _ in range(3): step()
    torch.cuda.synchronize()
k = {}
n = 0
for e in p.events():
    if e.device_type == torch.autograd.DeviceType.CUDA:
        nm = e.name[:90]; k[nm] = k.get(nm, 0) + e.device_time / 3e3; n += 1
print(f"{name} {mode} FUSED_LN={os.environ.get('VSSM_FUSED_LN')}: step median {ts[10]:.2f} ms (min {ts[0]:.2f}), img/s {BATCH*1e3/ts[10]:.0f}; kernels/step {n/3:.0f}, GPU ms/step {sum(k.values()):.2f}")
for nm, v in sorted(k.items(), key=lambda kv: -kv[1])[:int(os.environ.get("TOPK", "12"))]:
    print(f"  {v:7.3f}  {nm}")
if os.environ.get("PROF_CPU") == "1":
    ka = p.key_averages()
    rows = sorted(((e.key, e.cpu_time_total / 3e3, e.count / 3) for e in ka if e.key.startswith("autograd::engine::evaluate_function")), key=lambda r: -r[1])
    print("backward nodes, host ms per step (total incl. children), calls per step; sum", round(sum(r[1] for r in rows), 2))
    for key, ms, c in rows[:22]:
        print(f"  {ms:7.3f} {c:5.0f}  {key[37:110]}")
    rows = sorted(((e.key, e.self_cpu_time_total / 3e3, e.count / 3) for e in ka), key=lambda r: -r[1])
    print("self host ms per step, top ops")
    for key, ms, c in rows[:22]:
        print(f"  {ms:7.3f} {c:5.0f}  {key[:100]}")
