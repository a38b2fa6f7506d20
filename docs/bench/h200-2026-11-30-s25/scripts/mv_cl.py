"""MambaVision, one side per process (the harness's _env.build + bench_one, bf16, batch 128 at 224, 10 + 30), train then
infer. argv: name (mambavision_t / _b), side (cl: maps channels_last, the new default; nchw; official), [prof]."""
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
name, side = sys.argv[1], sys.argv[2]
if side != "official":
    _env.use_project()
m = _env.build(name + ("_official" if side == "official" else "")).cuda()
if side == "nchw":
    m.channels_last = False
for mode in ("train", "infer"):
    r = _env.bench_one(m, mode, 224, 128, 10, 30)
    print(name, side, mode, {k: round(v, 3) for k, v in r.items()}, flush=True)
    torch.cuda.empty_cache()
if len(sys.argv) > 3:
    from torch.profiler import profile, ProfilerActivity
    step = _env.make_step(m, "train", 128, 224)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    tot = sum(e.self_device_time_total for e in ev) / 3e3
    cnt = sum(e.count for e in ev) / 3
    print(f"PROF {name} {side}: GPU ms/step {tot:.2f}, kernels/step {cnt:.0f}")
    for e in sorted(ev, key=lambda e: -e.self_device_time_total)[:14]:
        print(f"   {e.self_device_time_total/3e3:7.3f} {e.count//3:4d} {e.key[:95]}")
