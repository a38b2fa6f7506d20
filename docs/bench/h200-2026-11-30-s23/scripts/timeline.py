"""(s23: any model; stages from levels / layers; gaps and host time by autograd node) Where the host waits and where the GPU idles in one training step (bf16, batch 128 at 224, the
harness's step, synchronised after each step as bench_one does), project against official, each side in a fresh
process. torch.profiler (CPU + CUDA) over 3 steps after 8 warm-up steps; the middle step is summarised:
wall, GPU busy, launches, launch-API time (and the part in calls over 50 us: the host blocked on a full launch
queue), GPU idle gaps over 10 us, each by phase (fwd / bwd / opt) and, in the forward, by model stage.
argv: [name] [batch]."""
import gzip, json, os, shutil, subprocess, sys
sys.path.insert(0, "/tmp/src/.official")

RUNTIME = ("cudaLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC", "cuLaunchKernel", "cudaMemcpyAsync",
           "cudaMemsetAsync")


def worker(side, name, batch, out):
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function
    import _env
    m = _env.build(name + ("_official" if side == "official" else "")).cuda()
    step = _env.make_step(m, "train", batch, 224, annotate=True)
    seq = getattr(m, "levels", None) or getattr(m, "layers", None) or []
    stages = [("patch_embed", m.patch_embed)] + [(f"stage.{i}", lv) for i, lv in enumerate(seq)]
    stages += [(n, getattr(m, n)) for n in ("norm", "avgpool", "head", "classifier") if isinstance(getattr(m, n, None), torch.nn.Module)]
    open_rf = {}
    for label, mod in stages:
        def pre(_m, _i, label=label):
            rf = record_function("stage:" + label); rf.__enter__(); open_rf[label] = rf
        def post(_m, _i, _o, label=label):
            open_rf.pop(label).__exit__(None, None, None)
        mod.register_forward_pre_hook(pre); mod.register_forward_hook(post)
    for _ in range(8):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for i in range(3):
            with record_function(f"step:{i}"):
                step()
                torch.cuda.synchronize()
    path = f"/tmp/trace_{side}.json"
    p.export_chrome_trace(path)
    with open(path) as f, gzip.open(os.path.join(out, f"trace_{name}_{side}.json.gz"), "wt") as g:
        data = f.read(); g.write(data)
    print("SUMMARY " + json.dumps(summarise(json.loads(data))), flush=True)


def summarise(trace):
    ev = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    step = next(e for e in ev if e.get("name") == "step:1")
    t0, t1 = step["ts"], step["ts"] + step["dur"]
    inside = [e for e in ev if t0 <= e["ts"] <= t1]
    spans = [e for e in inside if e.get("cat") == "user_annotation" and e["name"].startswith(("phase:", "stage:"))]

    def label(ts):
        ph = [s["name"][6:] for s in spans if s["name"].startswith("phase:") and s["ts"] <= ts <= s["ts"] + s["dur"]]
        st = [s["name"][6:] for s in spans if s["name"].startswith("stage:") and s["ts"] <= ts <= s["ts"] + s["dur"]]
        return (ph[0] if ph else "-") + ("/" + st[0] if st else "")

    runtime = [e for e in inside if e.get("cat") == "cuda_runtime" and e["name"] in RUNTIME]
    by_corr = {e["args"].get("correlation"): e for e in runtime}
    gpu = sorted((e for e in ev if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and t0 <= e["ts"] <= t1),
                 key=lambda e: e["ts"])
    busy, end, gaps = 0.0, None, {}
    for e in gpu:
        s, f = e["ts"], e["ts"] + e["dur"]
        if end is not None and s - end > 10:
            launch = by_corr.get(e["args"].get("correlation"))
            key = label(launch["ts"]) if launch else "?"
            gaps[key] = gaps.get(key, 0.0) + (s - end)
        if end is None or s >= end:
            busy += e["dur"]; end = f
        elif f > end:
            busy += f - end; end = f
    launch, blocked, nlaunch = {}, {}, {}
    for e in runtime:
        key = label(e["ts"])
        launch[key] = launch.get(key, 0.0) + e["dur"]
        nlaunch[key] = nlaunch.get(key, 0) + 1
        if e["dur"] > 50:
            blocked[key] = blocked.get(key, 0.0) + e["dur"]
    # backward: host time per autograd node type, and GPU idle gaps by the node that launched the next kernel
    nodes = [e for e in inside if e.get("cat") == "cpu_op" and e["name"].startswith("autograd::engine::evaluate_function: ")]
    node_ms, node_n = {}, {}
    for e in nodes:
        k = e["name"].split(": ", 1)[1]
        node_ms[k] = node_ms.get(k, 0.0) + e["dur"]; node_n[k] = node_n.get(k, 0) + 1
    nodes.sort(key=lambda e: e["ts"])
    import bisect
    starts = [e["ts"] for e in nodes]
    def node_at(ev):
        i = bisect.bisect_right(starts, ev["ts"]) - 1
        while i >= 0:
            n = nodes[i]
            if n["ts"] + n["dur"] >= ev["ts"] and n.get("tid") == ev.get("tid"):
                return n["name"].split(": ", 1)[1]
            if ev["ts"] - n["ts"] > 5e4:
                break
            i -= 1
        return "-"
    node_gaps = {}
    end = None
    for e in gpu:
        s_, f_ = e["ts"], e["ts"] + e["dur"]
        if end is not None and s_ - end > 10:
            launch_ev = by_corr.get(e["args"].get("correlation"))
            if launch_ev is not None:
                k = node_at(launch_ev)
                node_gaps[k] = node_gaps.get(k, 0.0) + (s_ - end)
        end = f_ if end is None else max(end, f_)
    top_nodes = dict(sorted(((k, round(v / 1e3, 2)) for k, v in node_ms.items()), key=lambda kv: -kv[1])[:25])
    top_gaps = dict(sorted(((k, round(v / 1e3, 2)) for k, v in node_gaps.items()), key=lambda kv: -kv[1])[:25])
    phases = {s["name"][6:]: s["dur"] / 1e3 for s in spans if s["name"].startswith("phase:")}
    stages_ms = {s["name"][6:]: s["dur"] / 1e3 for s in spans if s["name"].startswith("stage:")}
    ms = lambda d: {k: round(v / 1e3, 2) for k, v in sorted(d.items())}
    return dict(wall=round(step["dur"] / 1e3, 2), gpu_busy=round(busy / 1e3, 2), first_gpu=round(((gpu[0]["ts"] - t0) if gpu else 0) / 1e3, 2),
                last_gpu_end=round(((end or t0) - t0) / 1e3, 2), launches=sum(nlaunch.values()), phases_host_ms=phases,
                stages_host_ms=stages_ms, launches_by=nlaunch, launch_api_ms=ms(launch), launch_blocked_over50us_ms=ms(blocked),
                gpu_idle_gaps_ms=ms(gaps), bwd_node_host_ms=top_nodes,
                bwd_node_count={k: node_n[k] for k in top_nodes}, idle_gaps_by_node_ms=top_gaps)


if __name__ == "__main__":
    if os.environ.get("TL_WORKER"):
        worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
        sys.exit()
    name = sys.argv[1] if len(sys.argv) > 1 else "mambavision_t"
    batch = sys.argv[2] if len(sys.argv) > 2 else "128"
    out = os.environ.get("OUT", "/tmp")
    for side in os.environ.get("TL_SIDES", "project,official").split(","):
        r = subprocess.run([sys.executable, __file__, side, name, batch, out], capture_output=True, text=True,
                           env=dict(os.environ, TL_WORKER="1"))
        if "SUMMARY " not in r.stdout:
            print(side, "failed:", r.stderr[-2000:], flush=True)
            continue
        s = json.loads(r.stdout.split("SUMMARY ", 1)[1].splitlines()[0])
        print(f"== {name} b{batch} {side}")
        for k, v in s.items():
            print(f"  {k}: {v}")
        sys.stdout.flush()
