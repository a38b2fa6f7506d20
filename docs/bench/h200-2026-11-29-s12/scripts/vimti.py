import json, os, sys, time, statistics
sys.path.insert(0, ".official"); os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import _env, torch
import vssm.kernels.selective_scan.projected as P
orig = P.plain_eager
for var in ("proj", "composed", "proj"):
    P.plain_eager = orig if var == "proj" else (lambda *t: False)
    model = _env.build("vim_tiny_patch16_224").cuda()
    for mode in ("train", "infer"):
        r = _env.bench_one(model, mode, 224, 128, warmup=8, iters=20)
        step = _env.make_step(model, mode, 128, 224)
        step(); torch.cuda.synchronize()
        hs = []
        for _ in range(5):
            t0 = time.perf_counter(); step(); hs.append(time.perf_counter() - t0); torch.cuda.synchronize()
        print(var, mode, f"{r['img_per_s']:.0f} img/s {r['ms_per_batch']:.1f} ms host {1e3*statistics.median(hs):.1f} ms {r['peak_mem_gib']:.2f} GiB", flush=True)
    del model
