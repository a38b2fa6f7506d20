"""Stop 41 A/B in one process, alternating: 'old' (timm's composed drop path, autocast casting each weight), 'drop'
(add_drop_path only), 'new' (add_drop_path + autocast_weights). Per config and round: wall per step (synced each
step, as run.sh's bench_one) and host time of one step; then per config one profiled step: GPU busy ms, kernels,
top kernels; and the new step's loss / gradients against the old one's. argv: spec ... (name:px:bs:mode)."""
import os, statistics, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm  # noqa
import vssm.autocast_weights as aw
import _env
from torch.profiler import profile, ProfilerActivity

applies = aw._applies
MODS = [sys.modules[n] for n in ("vssm.models.vmamba", "vssm.models.mambavision", "vssm.models.simba")]
fused = MODS[0].add_drop_path
def composed(x, y, dp, gamma=None):
    return x + dp(y if gamma is None else gamma * y)
CFGS = os.environ.get("CFGS", "old,drop,new").split(",")
def set_cfg(c):
    for m in MODS:
        m.add_drop_path = composed if c == "old" else fused
    aw._applies = applies if c == "new" else (lambda pairs: False)

def timed(step, n=20):
    walls, hosts = [], []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter(); step(); t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
        hosts.append((t1 - t0) * 1e3); walls.append((t2 - t0) * 1e3)
    return statistics.median(walls), statistics.median(hosts)

for spec in sys.argv[1:]:
    name, px, bs, mode = spec.split(":"); px, bs = int(px), int(bs)
    torch.manual_seed(0)
    model = timm.create_model(name).cuda()
    # gradients of one step, old against new (same seed: the same drop-path masks)
    x = torch.randn(bs, 3, px, px, device="cuda"); y = torch.randint(0, 10, (bs,), device="cuda")
    res = {}
    for c in ("old", "new"):
        set_cfg(c); model.train(); torch.manual_seed(1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        res[c] = (loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        model.zero_grad(set_to_none=True)
    worst = max(((res["new"][1][n] - g).abs().max() / g.abs().max().clamp_min(1e-30)).item() for n, g in res["old"][1].items())
    same = sum(torch.equal(res["new"][1][n], g) for n, g in res["old"][1].items())
    print(f"{spec}: loss old {res['old'][0]:.6f} new {res['new'][0]:.6f}; grads {len(res['old'][1])}/{len(res['new'][1])}, "
          f"bitwise equal {same}, worst max-rel {worst:.2e}", flush=True)
    step = _env.make_step(model, mode, bs, px)
    for c in CFGS:
        set_cfg(c)
        for _ in range(3):
            step()
    out = {c: [] for c in CFGS}
    for rnd in range(3):
        for c in CFGS:
            set_cfg(c)
            step(); step()
            out[c].append(timed(step))
    for c in CFGS:
        w = [r[0] for r in out[c]]; h = [r[1] for r in out[c]]
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
            agg[e.name[:50]] = agg.get(e.name[:50], 0) + e.device_time
        top = sorted(agg.items(), key=lambda kv: -kv[1])[:6]
        print(f"{spec:40s} {c}: GPU {busy:.2f} ms, kernels {len(ks)}; " + "; ".join(f"{k} {v/1e3:.2f}" for k, v in top), flush=True)
    del model, step
    torch.cuda.empty_cache()
