"""Stop 31: host time of the e2e steps. For each config: wall per step (synced), host time of one step (return of
step() before the sync), syncs inside a step (sync debug mode), then cProfile (tottime / cumulative)."""
import cProfile, io, os, pstats, statistics, sys, time, warnings
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm  # noqa
import _env

CONFIGS = [a.split(":") for a in (sys.argv[1:] or [
    "vim_small_patch16_224:224:128:train", "vmamba_tiny_s1l8:224:128:train",
    "vim_tiny_patch16_224:1248:8:infer", "vim_small_patch16_224:224:16:train"])]
PROF = os.environ.get("PROF", "1") == "1"
for name, px, bs, mode in CONFIGS:
    px, bs = int(px), int(bs)
    kw = {"img_size": px} if "vim" in name else {}
    torch.manual_seed(0)
    model = timm.create_model(name, **kw).cuda()
    step = _env.make_step(model, mode, bs, px)
    for _ in range(4):
        step()
    torch.cuda.synchronize()
    walls, hosts = [], []
    for _ in range(12):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        hosts.append((t1 - t0) * 1e3); walls.append((t2 - t0) * 1e3)
    # syncs inside a step
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        step()
    torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    print(f"\n=== {name} {px} b{bs} {mode}: wall {statistics.median(walls):.2f} ms, host {statistics.median(hosts):.2f} ms "
          f"(min {min(hosts):.2f}), syncs {len(w)}", flush=True)
    for x in w[:6]:
        print("  sync:", str(x.message)[:200], x.filename, x.lineno)
    if PROF:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(3):
            step()
        pr.disable()
        pr.dump_stats(os.path.join(os.environ.get("OUT", "/tmp"), f"prof_{name}_{px}_{bs}_{mode}.pstats"))
        torch.cuda.synchronize()
        s = io.StringIO()
        st = pstats.Stats(pr, stream=s)
        st.sort_stats("tottime").print_stats(40)
        st.sort_stats("cumulative").print_stats(60)
        out = s.getvalue().replace(os.getcwd() + "/", "")
        import re
        out = re.sub(r"/usr/[^ ]*site-packages/", "", out)
        print(out, flush=True)
    del model, step
    torch.cuda.empty_cache()
