"""Where a step's host time goes. argv: model name (project timm name or *_official), mode (train|infer).
A: 20 steps, each after a sync: host ms of fwd / zero_grad+bwd / opt, and wall to the closing sync (medians).
B: cProfile of 3 steps, backward on the calling thread (autograd multithreading off): tottime by file, top funcs.
C: torch.profiler (CPU only) of 3 steps: ops by self CPU time."""
import os, sys, time, statistics, cProfile, pstats, io, collections
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch, torch.nn as nn
name, mode = sys.argv[1], sys.argv[2]
if not name.endswith("_official") and not name.startswith("deit"):
    _env.use_project()
m = _env.build(name).cuda()
x = torch.randn(128, 3, 224, 224, device="cuda")
y = torch.randint(0, 10, (128,), device="cuda")
if mode == "infer":
    m.eval()
    def phases():
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            m(x)
        return [time.perf_counter() - t0]
else:
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
    def phases():
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(m(x).float(), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return [t1 - t0, t2 - t1, t3 - t2]
for _ in range(8):
    phases()
torch.cuda.synchronize()
rows = []
for _ in range(20):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    p = phases()
    torch.cuda.synchronize()
    rows.append(p + [time.perf_counter() - t0])
med = [statistics.median(c) * 1e3 for c in zip(*rows)]
print(f"A {os.environ.get('TAG', '')} {name} {mode} host ms (fwd, bwd, opt | wall):", " ".join(f"{v:.2f}" for v in med), flush=True)
if os.environ.get("ONLY_A"):
    sys.exit(0)
torch.autograd.set_multithreading_enabled(False)
for _ in range(2):
    phases()
torch.cuda.synchronize()
pr = cProfile.Profile()
pr.enable()
for _ in range(3):
    phases()
pr.disable()
torch.cuda.synchronize()
st = pstats.Stats(pr)
byfile = collections.Counter()
for (fn, line, func), (cc, nc, tt, ct, callers) in st.stats.items():
    key = fn.split("/site-packages/")[-1] if "site-packages" in fn else fn.replace(os.getcwd() + "/", "")
    byfile[key] += tt
tot = sum(byfile.values())
print(f"B {name} {mode} cProfile tottime per step {tot/3*1e3:.2f} ms; by file (ms/step):")
for k, v in byfile.most_common(22):
    print(f"   {v/3*1e3:8.2f}  {k}")
s = io.StringIO()
pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(30)
lines = [l for l in s.getvalue().splitlines() if l.strip()]
start = next(i for i, l in enumerate(lines) if "ncalls" in l)
print("\n".join(lines[start:start + 31]))
torch.autograd.set_multithreading_enabled(True)
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(3):
        phases()
    torch.cuda.synchronize()
print(f"C {name} {mode} ops by self CPU (3 steps):")
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=28, max_name_column_width=60))
