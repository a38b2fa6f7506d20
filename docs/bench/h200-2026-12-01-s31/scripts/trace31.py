"""Stop 31: where the GPU waits in a training step. torch.profiler over 2 steps (phases annotated); each kernel is
attributed to the phase whose CPU range launched it (correlation ids); per phase: host ms, GPU busy ms, GPU span,
idle inside the span. Also the gaps > 20 us between kernels, summed by the phase of the kernel after the gap."""
import gzip, json, os, sys, collections
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm  # noqa
import _env
from torch.profiler import profile, ProfilerActivity

out = os.environ.get("OUT", "/tmp")
for spec in (sys.argv[1:] or ["vim_small_patch16_224:224:128:train", "vmamba_tiny_s1l8:224:128:train"]):
    name, px, bs, mode = spec.split(":"); px, bs = int(px), int(bs)
    kw = {"img_size": px} if "vim" in name else {}
    model = timm.create_model(name, **kw).cuda()
    step = _env.make_step(model, mode, bs, px, annotate=True)
    for _ in range(4):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(2):
            with torch.profiler.record_function(f"step#{i}"):
                step()
            torch.cuda.synchronize()
    path = f"/tmp/{name}_{mode}.json"
    prof.export_chrome_trace(path)
    with open(path) as f:
        ev = json.load(f)["traceEvents"]
    with open(path, "rb") as f, gzip.open(os.path.join(out, f"trace_{name}_{px}_{mode}.json.gz"), "wb") as g:
        g.write(f.read())
    phases = [e for e in ev if e.get("ph") == "X" and str(e.get("name", "")).startswith(("phase:", "step#"))]
    corr_cpu = {}
    for e in ev:
        a = e.get("args") or {}
        if e.get("ph") == "X" and e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in a:
            corr_cpu[a["correlation"]] = e["ts"]
    kernels = sorted([e for e in ev if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")],
                     key=lambda e: e["ts"])
    steps = sorted([p for p in phases if p["name"].startswith("step#")], key=lambda p: p["ts"])
    ph = sorted([p for p in phases if p["name"].startswith("phase:")], key=lambda p: p["ts"])
    def phase_of(ts):
        for p in ph:
            if p["ts"] <= ts <= p["ts"] + p["dur"]:
                return p["name"]
        return "other"
    print(f"\n=== {name} {px} b{bs} {mode}")
    for s in steps:
        s0, s1 = s["ts"], s["ts"] + s["dur"]
        ks = [k for k in kernels if corr_cpu.get((k.get("args") or {}).get("correlation"), -1) >= s0
              and corr_cpu.get((k.get("args") or {}).get("correlation"), -1) <= s1]
        byph = collections.defaultdict(list)
        for k in ks:
            byph[phase_of(corr_cpu[k["args"]["correlation"]])].append(k)
        print(f"{s['name']}: CPU range {s['dur']/1e3:.2f} ms, kernels {len(ks)}, GPU busy {sum(k['dur'] for k in ks)/1e3:.2f} ms,"
              f" first kernel +{(ks[0]['ts']-s0)/1e3:.2f} ms, last end +{(ks[-1]['ts']+ks[-1]['dur']-s0)/1e3:.2f} ms")
        for p in [p for p in ph if s0 <= p["ts"] <= s1]:
            kk = byph.get(p["name"], [])
            if not kk:
                print(f"  {p['name']}: host {p['dur']/1e3:.2f} ms, no kernels"); continue
            span = kk[-1]["ts"] + kk[-1]["dur"] - kk[0]["ts"]
            busy = sum(k["dur"] for k in kk)
            gaps = [(b["ts"] - (a["ts"] + a["dur"])) for a, b in zip(kk, kk[1:])]
            print(f"  {p['name']}: host {p['dur']/1e3:.2f} ms (+{(p['ts']-s0)/1e3:.2f}), kernels {len(kk)}, GPU busy {busy/1e3:.2f}, "
                  f"span {span/1e3:.2f} (+{(kk[0]['ts']-s0)/1e3:.2f} .. +{(kk[-1]['ts']+kk[-1]['dur']-s0)/1e3:.2f}), idle in span "
                  f"{(span-busy)/1e3:.2f} ms; gaps>20us: {sum(g for g in gaps if g > 20)/1e3:.2f} ms in {sum(1 for g in gaps if g > 20)}")
    del model, step
    torch.cuda.empty_cache()
