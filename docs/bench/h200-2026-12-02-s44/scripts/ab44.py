"""Stop 44 A/B in one process, alternating VSSM launch plans off / on (vssm.mamba.LAUNCH_PLANS), bf16 autocast
inference under inference_mode as _env.bench_one: per config and round, the median wall of a synced step, the host
time of a step, and the throughput of 30 back-to-back steps (CUDA events); per config one profiled step (kernels,
GPU busy). argv: name:px:bs ..."""
import statistics, sys, time
import torch, timm
import vssm  # noqa
import vssm.mamba as vm
from torch.profiler import profile, ProfilerActivity

def run(model, x):
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        return model(x)

for spec in sys.argv[1:]:
    name, px, bs = spec.split(":"); px, bs = int(px), int(bs)
    torch.manual_seed(0)
    model = timm.create_model(name, img_size=px).cuda().eval()
    x = torch.randn(bs, 3, px, px, device="cuda")
    vm.LAUNCH_PLANS = False; ref = run(model, x)
    for _ in range(2): run(model, x)
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    for _ in range(3): run(model, x)
    torch.cuda.synchronize(); peak_off = torch.cuda.max_memory_allocated()
    vm.LAUNCH_PLANS = True; torch.cuda.reset_peak_memory_stats()
    outs = [run(model, x) for _ in range(3)]  # seen, recorded, replayed
    torch.cuda.synchronize(); peak_rec = torch.cuda.max_memory_allocated(); torch.cuda.reset_peak_memory_stats()
    outs += [run(model, x) for _ in range(3)]
    torch.cuda.synchronize(); peak_on = torch.cuda.max_memory_allocated()
    print(f"{spec}: peak MiB above the model and input: off {(peak_off - base) / 2**20:.1f}, recording "
          f"{(peak_rec - base) / 2**20:.1f}, plans {(peak_on - base) / 2**20:.1f}", flush=True)
    outs = outs[-4:]
    ents = [e for m in model.modules() if isinstance(m, vm.Mamba) for e in vm._PLANS.get(m, {}).values()]
    print(f"{spec}: equal {[torch.equal(o, ref) for o in outs]}, plans {sum(e[1] is not None for e in ents)}/{len(ents)}, "
          f"refused {set(e[2] for e in ents if e[2])}", flush=True)
    res = {c: {"wall": [], "host": [], "thr": []} for c in ("off", "on")}
    for rnd in range(3):
        for c in ("off", "on"):
            vm.LAUNCH_PLANS = c == "on"
            for _ in range(5): run(model, x)
            walls, hosts = [], []
            for _ in range(20):
                torch.cuda.synchronize(); t0 = time.perf_counter(); run(model, x); t1 = time.perf_counter()
                torch.cuda.synchronize(); t2 = time.perf_counter()
                hosts.append((t1 - t0) * 1e3); walls.append((t2 - t0) * 1e3)
            torch.cuda.synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            for _ in range(30): run(model, x)
            e1.record(); torch.cuda.synchronize()
            r = res[c]; r["wall"].append(statistics.median(walls)); r["host"].append(statistics.median(hosts))
            r["thr"].append(e0.elapsed_time(e1) / 30)
    for c, r in res.items():
        print(f"  {c}: synced wall ms {[round(v, 2) for v in r['wall']]}, host ms {[round(v, 2) for v in r['host']]}, "
              f"back-to-back ms/step {[round(v, 2) for v in r['thr']]} -> {bs * 1e3 / statistics.median(r['thr']):.1f} img/s", flush=True)
    for c in ("off", "on"):
        vm.LAUNCH_PLANS = c == "on"
        run(model, x); torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            run(model, x); torch.cuda.synchronize()
        ev = [e for e in p.events() if e.device_type.name == "CUDA"]
        busy = sum(e.device_time for e in ev) / 1e3
        print(f"  profiled {c}: {len(ev)} kernels, GPU busy {busy:.2f} ms", flush=True)
    vm.LAUNCH_PLANS = True
    del model, x, ref, outs; torch.cuda.empty_cache()
