"""MambaVision-T / -B inference, bf16, batch 128 at 224: bench_one img/s (10 + 30), then one profiled step: wall, GPU
busy, launches and the top kernels by GPU time. Each side in a fresh process (argv: side name)."""
import os, subprocess, sys, json, collections
sys.path.insert(0, "/tmp/src/.official")
if os.environ.get("MV_WORKER"):
    import torch
    from torch.profiler import ProfilerActivity, profile
    import _env
    side, name = sys.argv[1], sys.argv[2]
    m = _env.build(name + ("_official" if side == "official" else "")).cuda()
    r = _env.bench_one(m, "infer", 224, 128, 10, 30)
    print(side, name, {k: round(v, 3) for k, v in r.items()}, flush=True)
    step = _env.make_step(m, "infer", 128, 224)
    for _ in range(5): step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        step(); torch.cuda.synchronize()
    k = collections.Counter(); n = collections.Counter()
    for e in p.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            k[e.name] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total; n[e.name] += 1
    tot = sum(k.values())
    print(f"  kernels {sum(n.values())} GPU {tot/1e3:.2f} ms")
    for nm, t in k.most_common(14):
        print(f"   {t/1e3:7.3f} ms {n[nm]:4d}  {nm[:110]}")
    sys.exit()
for name in ("mambavision_t",):
    for side in ("project", "official"):
        r = subprocess.run([sys.executable, __file__, side, name], capture_output=True, text=True, env=dict(os.environ, MV_WORKER="1"))
        print(r.stdout[-6000:], r.stderr[-1500:] if r.returncode else "", flush=True)
