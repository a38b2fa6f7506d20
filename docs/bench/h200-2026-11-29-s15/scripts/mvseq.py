"""MambaVision-T training ms/step: fresh vs after the e2e's earlier project models in the same process."""
import gc, sys, time, torch
sys.path.insert(0, ".official")
import _env
seq = sys.argv[1].split(",") if len(sys.argv) > 1 else []
def run(name, mode="train", it=30, wu=10):
    m = _env.build(name).cuda()
    r = _env.bench_one(m, mode, 224, 128, wu, it)
    del m; torch.cuda.empty_cache()
    print(f"{name:24s} {mode} {r['ms_per_batch']:8.2f} ms {r['peak_mem_gib']:.2f} GiB  objs {len(gc.get_objects())} gc {gc.get_count()}", flush=True)
    return r
for n in seq:
    for mode in ("infer", "train"):
        run(n, mode, it=10, wu=3)
run("mambavision_t", "infer")
run("mambavision_t")
gc.collect(); gc.freeze()
run("mambavision_t")
