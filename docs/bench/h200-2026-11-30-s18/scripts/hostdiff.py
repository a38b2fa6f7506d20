"""Host time by op, project against official, one training step at a small batch (host-bound): torch.profiler
(CPU only), self CPU ms per step and calls per step for each op / autograd node, both sides side by side
(each side in a fresh process). argv: name batch."""
import json, os, subprocess, sys, time, statistics
sys.path.insert(0, "/tmp/src/.official")
if os.environ.get("HD_WORKER"):
    import torch, torch.nn as nn, _env
    from torch.profiler import profile, ProfilerActivity
    side, name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = _env.build(name + ("_official" if side == "official" else "")).cuda().train()
    step = _env.make_step(m, "train", batch, 224)
    for _ in range(6): step()
    torch.cuda.synchronize()
    ts = []
    for _ in range(15):
        t0 = time.perf_counter(); step(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(3): step()
        torch.cuda.synchronize()
    rows = {e.key: (e.self_cpu_time_total / 3e3, e.count / 3) for e in p.key_averages()}
    print("ROW " + json.dumps(dict(wall=1e3 * statistics.median(ts), rows=rows)), flush=True)
    sys.exit()
name, batch = sys.argv[1], sys.argv[2]
res = {}
for side in ("project", "official"):
    r = subprocess.run([sys.executable, __file__, side, name, batch], capture_output=True, text=True,
                       env=dict(os.environ, HD_WORKER="1"))
    if "ROW " not in r.stdout:
        print(side, "failed", r.stderr[-1500:]); continue
    res[side] = json.loads(r.stdout.split("ROW ", 1)[1].splitlines()[0])
if len(res) == 2:
    P, O = res["project"]["rows"], res["official"]["rows"]
    tp, to = sum(v[0] for v in P.values()), sum(v[0] for v in O.values())
    print(f"{name} b{batch}: wall project {res['project']['wall']:.1f} official {res['official']['wall']:.1f} ms; "
          f"profiled self-CPU sum {tp:.1f} / {to:.1f} ms")
    keys = sorted(set(P) | set(O), key=lambda k: -abs(P.get(k, (0, 0))[0] - O.get(k, (0, 0))[0]))
    print(f"{'op':70s} {'proj ms':>8s} {'calls':>6s} {'off ms':>8s} {'calls':>6s}")
    for k in keys[:45]:
        a, b = P.get(k, (0, 0)), O.get(k, (0, 0))
        print(f"{k[:70]:70s} {a[0]:8.2f} {a[1]:6.0f} {b[0]:8.2f} {b[1]:6.0f}")
