"""Stop 31 A/B: one config per process. Wall per step (synced each step) and host time of one step (step() returned,
before the sync); medians of 20 steps after 5 warm-up. Prints one line: tag config wall host."""
import os, statistics, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm  # noqa
import _env
tag, spec = sys.argv[1], sys.argv[2]
name, px, bs, mode = spec.split(":"); px, bs = int(px), int(bs)
kw = {"img_size": px} if "vim" in name else {}
torch.manual_seed(0)
model = timm.create_model(name, **kw).cuda()
step = _env.make_step(model, mode, bs, px)
for _ in range(5):
    step()
torch.cuda.synchronize()
walls, hosts = [], []
for _ in range(20):
    torch.cuda.synchronize()
    t0 = time.perf_counter(); step(); t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
    hosts.append((t1 - t0) * 1e3); walls.append((t2 - t0) * 1e3)
print(f"{tag:4s} {spec:40s} wall {statistics.median(walls):7.2f} host {statistics.median(hosts):7.2f} ms", flush=True)
