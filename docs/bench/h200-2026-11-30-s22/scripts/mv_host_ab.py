"""MambaVision-T training (bf16, batch 128 at 224, the harness's bench_one 10 + 30), one process, alternating host
settings: as is; torch.set_num_threads(1) (OpenMP workers that spin after CPU ops); gc.freeze() after warm-up
(Python collections over every tracked object); both. Also the gen-0/1/2 collections per step as is."""
import gc, sys, time
sys.path.insert(0, "/tmp/src/.official")
import torch
import _env
if not sys.argv[-1].endswith("_official"):
    import vssm  # noqa
name = sys.argv[1] if len(sys.argv) > 1 else "mambavision_t"
m = _env.build(name, 224).cuda()
threads = torch.get_num_threads()
step = _env.make_step(m, "train", 128, 224)
for _ in range(5): step()
torch.cuda.synchronize()
c0 = [s["collections"] for s in gc.get_stats()]
t = time.perf_counter()
for _ in range(20): step()
torch.cuda.synchronize()
c1 = [s["collections"] for s in gc.get_stats()]
print(name, "threads", threads, "gc objects", len(gc.get_objects()), "collections per step (gen 0/1/2)",
      [round((b - a) / 20, 2) for a, b in zip(c0, c1)], f"{(time.perf_counter() - t) / 20 * 1e3:.1f} ms/step", flush=True)
for rep in range(2):
    for label in ("as is", "1 thread", "gc frozen", "both"):
        torch.set_num_threads(1 if label in ("1 thread", "both") else threads)
        gc.unfreeze()
        if label in ("gc frozen", "both"):
            gc.collect(); gc.freeze()
        r = _env.bench_one(m, "train", 224, 128, 10, 30)
        print(name, label, {k: round(v, 3) for k, v in r.items()}, flush=True)
gc.unfreeze()
