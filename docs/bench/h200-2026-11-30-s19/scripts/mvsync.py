"""Why does the host wait at batch 128? One model, training step, project / official each in a fresh process:
synced vs pipelined step time, allocator device mallocs/frees per step, torch sync-debug warnings in one step,
and the longest CUDA runtime calls (with their op parents) in a 3-step profile. argv: name batch."""
import json, os, subprocess, sys, time, statistics, warnings, collections
sys.path.insert(0, "/tmp/src/.official")
if os.environ.get("MS_WORKER"):
    import torch, _env
    from torch.profiler import profile, ProfilerActivity
    side, name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = _env.build(name + ("_official" if side == "official" else "")).cuda().train()
    step = _env.make_step(m, "train", batch, 224)
    for _ in range(8): step()
    torch.cuda.synchronize()
    ts = []
    for _ in range(12):
        t0 = time.perf_counter(); step(); torch.cuda.synchronize(); ts.append(1e3 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    for _ in range(12): step()
    torch.cuda.synchronize(); piped = 1e3 * (time.perf_counter() - t0) / 12
    s0 = torch.cuda.memory_stats()
    for _ in range(6): step()
    torch.cuda.synchronize(); s1 = torch.cuda.memory_stats()
    alloc = {k: (s1.get(k, 0) - s0.get(k, 0)) / 6 for k in ("num_device_alloc", "num_device_free", "num_alloc_retries",
                                                          "num_sync_all_streams", "num_ooms")}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn"); step(); torch.cuda.set_sync_debug_mode(0)
    syncs = collections.Counter(str(x.message)[:160] + " @ " + f"{os.path.basename(x.filename)}:{x.lineno}" for x in w)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(3): step()
        torch.cuda.synchronize()
    ev = p.events()
    rt = [e for e in ev if e.name.startswith(("cuda", "cu")) and not e.name.startswith("cudnn")]
    byname = collections.defaultdict(list)
    for e in rt: byname[e.name].append(e.cpu_time_total / 1e3)
    tot = {k: (sum(v) / 3, len(v) / 3, max(v)) for k, v in byname.items()}
    longest = sorted(rt, key=lambda e: -e.cpu_time_total)[:12]
    def chain(e):
        out = []; q = e.cpu_parent
        while q is not None and len(out) < 5:
            out.append(q.name[:48]); q = q.cpu_parent
        return " < ".join(out)
    lg = [(e.name, e.cpu_time_total / 1e3, chain(e)) for e in longest]
    print("ROW " + json.dumps(dict(synced=statistics.median(ts), piped=piped, alloc=alloc, syncs=syncs.most_common(8),
                                   runtime=tot, longest=lg)), flush=True)
    sys.exit()
name, batch = sys.argv[1], sys.argv[2]
for side in os.environ.get("SIDES", "project,official").split(","):
    r = subprocess.run([sys.executable, __file__, side, name, batch], capture_output=True, text=True,
                       env=dict(os.environ, MS_WORKER="1"))
    if "ROW " not in r.stdout:
        print(side, "failed", r.stderr[-2000:]); continue
    d = json.loads(r.stdout.split("ROW ", 1)[1].splitlines()[0])
    print(f"== {name} b{batch} {side}: synced {d['synced']:.2f} ms, pipelined {d['piped']:.2f} ms/step; alloc/step {d['alloc']}")
    for s, c in d["syncs"]: print(f"   sync x{c}: {s}")
    for k, (t, c, mx) in sorted(d["runtime"].items(), key=lambda kv: -kv[1][0])[:10]:
        print(f"   {k:34s} {t:8.2f} ms/step  {c:7.1f} calls  max {mx:7.3f} ms")
    for n, t, ch in d["longest"]: print(f"   long {n:26s} {t:7.3f} ms  <- {ch}")
