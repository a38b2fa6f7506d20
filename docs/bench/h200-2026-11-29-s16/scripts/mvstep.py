"""MambaVision-T training step: wall (CUDA events, sync per step, the harness protocol) against the host time
of each phase (perf_counter, no sync inside the step), project and official each in a fresh process; then
cProfile of 5 project steps by tottime."""
import json, os, subprocess, sys, time, statistics
sys.path.insert(0, ".official")
if os.environ.get("MVSTEP_WORKER"):
    import torch, torch.nn as nn, _env
    side, name = sys.argv[1], sys.argv[2]
    m = _env.build(name + ("_official" if side == "official" else "")).cuda().train()
    x = torch.randn(128, 3, 224, 224, device="cuda"); y = torch.randint(0, 10, (128,), device="cuda")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
    rows = []
    for it in range(45):
        torch.cuda.synchronize()
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter(); ev0.record()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(m(x).float(), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True); loss.backward(); t2 = time.perf_counter()
        opt.step(); t3 = time.perf_counter(); ev1.record(); ev1.synchronize(); t4 = time.perf_counter()
        if it >= 15:
            rows.append(dict(fwd=t1 - t0, bwd=t2 - t1, opt=t3 - t2, host=t3 - t0, wall=ev0.elapsed_time(ev1) / 1e3))
    med = {k: 1e3 * statistics.median(r[k] for r in rows) for k in rows[0]}
    print("ROW " + json.dumps(med), flush=True)
    if side == "project" and os.environ.get("CPROF"):
        import cProfile, pstats, io
        pr = cProfile.Profile(); pr.enable()
        for _ in range(5):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = nn.functional.cross_entropy(m(x).float(), y)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        pr.disable(); torch.cuda.synchronize()
        s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(40); print(s.getvalue())
    sys.exit()
for name in sys.argv[1:] or ["mambavision_t"]:
    for side in ("project", "official", "project", "official"):
        r = subprocess.run([sys.executable, __file__, side, name], capture_output=True, text=True,
                           env=dict(os.environ, MVSTEP_WORKER="1", CPROF="1" if side == "project" else ""))
        out = r.stdout
        if "ROW " not in out:
            print(side, name, "failed", r.stderr[-2000:]); continue
        med = json.loads(out.split("ROW ", 1)[1].splitlines()[0])
        print(f"{name:16s} {side:9s} " + "  ".join(f"{k} {v:6.2f}" for k, v in med.items()) + " ms", flush=True)
        if side == "project" and "tottime" in out and not os.environ.get("PRINTED_" + name):
            os.environ["PRINTED_" + name] = "1"
            print(out.split("\n", 1)[1][:7000])
