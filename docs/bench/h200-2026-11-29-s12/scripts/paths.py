"""Model-level timings (the e2e protocol of .official/_env.py, bf16, batch 128 at 224) of path variants,
and the host time of one step (issue time with no sync) against its GPU time."""
import json, os, sys, time, statistics
sys.path.insert(0, ".official")
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import _env
import torch

def host_ms(model, mode):
    step = _env.make_step(model, mode, 128, 224)
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    hs, ws = [], []
    for _ in range(10):
        t0 = time.perf_counter(); step(); t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
        hs.append((t1 - t0) * 1e3); ws.append((t2 - t0) * 1e3)
    return statistics.median(hs), statistics.median(ws)

names = sys.argv[2].split(",")
variants = sys.argv[3].split(",")
res = []
import vssm.mamba, vssm.models.mambavision as mv
orig = (vssm.mamba.has_fast_kernel, mv.has_fast_kernel)
for name in names:
    for var in variants:
        vssm.mamba.has_fast_kernel, mv.has_fast_kernel = orig
        if var == "fconv":
            vssm.mamba.has_fast_kernel = mv.has_fast_kernel = lambda t: False
        model = _env.build(name).cuda()
        for mode in ("infer", "train"):
            torch.cuda.empty_cache()
            r = _env.bench_one(model, mode, 224, 128, warmup=10, iters=30)
            h, w = host_ms(model, mode)
            r.update(model=name, variant=var, mode=mode, host_ms=h, wall_ms=w)
            print(json.dumps(r), flush=True); res.append(r)
        del model
json.dump(res, open(sys.argv[1], "w"), indent=0)
