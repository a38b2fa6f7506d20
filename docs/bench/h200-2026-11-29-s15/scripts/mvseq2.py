"""Is a second training run in one process slower? python mvseq2.py NAME [NAME2]"""
import gc, sys, time, torch
sys.path.insert(0, ".official")
import _env
def bench(m, label, mode="train"):
    t0 = time.perf_counter()
    r = _env.bench_one(m, mode, 224, 128, 10, 30)
    print(f"{label:40s} {mode} {r['ms_per_batch']:8.2f} ms  alloc {torch.cuda.memory_allocated()/2**20:.0f} MiB  [{time.perf_counter()-t0:.1f}s]", flush=True)
for name in sys.argv[1:]:
    m = _env.build(name).cuda()
    bench(m, name + " #1")
    bench(m, name + " #1 same model again")
    del m; gc.collect(); torch.cuda.empty_cache()
    m = _env.build(name).cuda()
    bench(m, name + " #2 rebuilt")
    del m; gc.collect(); torch.cuda.empty_cache()
