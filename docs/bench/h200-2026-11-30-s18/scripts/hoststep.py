"""Training step of one model: wall (CUDA events) against the host time of each phase (perf_counter, no sync
inside the step), project / official alternating, each in a fresh process. argv: name batch [sides]."""
import json, os, subprocess, sys, time, statistics
sys.path.insert(0, "/tmp/src/.official")
if os.environ.get("HS_WORKER"):
    import torch, torch.nn as nn, _env
    side, name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = _env.build(name + ("_official" if side == "official" else "")).cuda().train()
    if os.environ.get("HS_MIN"):
        import vssm.norm; vssm.norm.AUTO_MIN_NUMEL = int(os.environ["HS_MIN"])
    x = torch.randn(batch, 3, 224, 224, device="cuda"); y = torch.randint(0, 10, (batch,), device="cuda")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
    rows = []
    for it in range(40):
        torch.cuda.synchronize()
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter(); ev0.record()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(m(x).float(), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True); loss.backward(); t2 = time.perf_counter()
        opt.step(); t3 = time.perf_counter(); ev1.record(); ev1.synchronize()
        if it >= 12:
            rows.append(dict(fwd=t1 - t0, bwd=t2 - t1, opt=t3 - t2, host=t3 - t0, wall=ev0.elapsed_time(ev1) / 1e3))
    med = {k: 1e3 * statistics.median(r[k] for r in rows) for k in rows[0]}
    print("ROW " + json.dumps(med), flush=True)
    sys.exit()
name, batch = sys.argv[1], sys.argv[2]
sides = sys.argv[3].split(",") if len(sys.argv) > 3 else ["project", "official", "project", "official"]
for side in sides:
    env = dict(os.environ, HS_WORKER="1")
    r = subprocess.run([sys.executable, __file__, side, name, batch], capture_output=True, text=True, env=env)
    if "ROW " not in r.stdout:
        print(side, name, "failed", r.stderr[-1500:]); continue
    med = json.loads(r.stdout.split("ROW ", 1)[1].splitlines()[0])
    tag = os.environ.get("TAG", "")
    print(f"{name:18s} b{batch:<4s}{side:9s}{tag} " + "  ".join(f"{k} {v:6.2f}" for k, v in med.items()) + " ms", flush=True)
