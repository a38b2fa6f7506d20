"""Stop 32 A/B in one process, alternating: 'new' (the conv-projection kernel + in_proj cast once) against 'old'
(FUSED_CONV_PROJECT off, in_proj through autocast). Per config and round: wall per step (synced each step, as
run.sh's bench_one), host time of one step (step() returned); then per config one profiled step: GPU busy ms,
launches, top kernels. argv: spec ... (name:px:bs:mode)."""
import os, statistics, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm  # noqa
import vssm.mamba as vm
import _env
from torch.profiler import profile, ProfilerActivity

orig_in_proj = vm.Mamba._in_proj
CFGS = os.environ.get("CFGS", "old,new").split(",")
def set_cfg(c):
    vm.FUSED_CONV_PROJECT = c.startswith("new")
    vm.FUSED_TOKEN_MAJOR = c == "new-tm"
    vm.Mamba._in_proj = orig_in_proj if c.startswith("new") else (lambda self, x: self.in_proj(x))

def timed(step, n=20):
    walls, hosts = [], []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter(); step(); t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
        hosts.append((t1 - t0) * 1e3); walls.append((t2 - t0) * 1e3)
    return statistics.median(walls), statistics.median(hosts)

for spec in sys.argv[1:]:
    name, px, bs, mode = spec.split(":"); px, bs = int(px), int(bs)
    kw = {"img_size": px} if px != 224 else {}
    torch.manual_seed(0)
    model = timm.create_model(name, **kw).cuda()
    step = _env.make_step(model, mode, bs, px)
    outs = {}
    for c in CFGS:
        set_cfg(c)
        for _ in range(3):
            step()
    res = {c: [] for c in CFGS}
    for rnd in range(3):
        for c in CFGS:
            set_cfg(c)
            step(); step()
            res[c].append(timed(step))
    for c in CFGS:
        w = [r[0] for r in res[c]]; h = [r[1] for r in res[c]]
        print(f"{spec:40s} {c}: wall {' '.join(f'{v:7.2f}' for v in w)}  host {' '.join(f'{v:7.2f}' for v in h)} ms", flush=True)
    for c in CFGS:
        set_cfg(c)
        step(); torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
            step(); torch.cuda.synchronize()
        ks = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.device_time for e in ks) / 1e3
        agg = {}
        for e in ks:
            agg[e.name[:60]] = agg.get(e.name[:60], 0) + e.device_time
        top = sorted(agg.items(), key=lambda kv: -kv[1])[:8]
        print(f"{spec:40s} {c}: GPU {busy:.2f} ms, kernels {len(ks)}; " + "; ".join(f"{k} {v/1e3:.2f}" for k, v in top), flush=True)
    del model, step
    torch.cuda.empty_cache()
