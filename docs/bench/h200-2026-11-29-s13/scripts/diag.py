"""Host-time diagnostics: e2e-protocol timings, host time per step, cProfile top functions."""
import cProfile, gc, io, json, os, pstats, statistics, sys, time
sys.path.insert(0, ".official")
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import _env
import torch

side, out = sys.argv[1], sys.argv[2]
res = []

def host_ms(step, n=15):
    for _ in range(3): step()
    torch.cuda.synchronize()
    hs, ws = [], []
    for _ in range(n):
        t0 = time.perf_counter(); step(); t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
        hs.append((t1 - t0) * 1e3); ws.append((t2 - t0) * 1e3)
    return statistics.median(hs), statistics.median(ws)

def prof(step, n, label, top=28):
    for _ in range(3): step()
    torch.cuda.synchronize()
    pr = cProfile.Profile(); pr.enable()
    for _ in range(n): step()
    torch.cuda.synchronize()
    pr.disable()
    s = io.StringIO(); st = pstats.Stats(pr, stream=s); st.sort_stats("tottime").print_stats(top)
    txt = s.getvalue()
    with open(f"{out}/prof_{label}.txt", "w") as f: f.write(txt)
    lines = [l for l in txt.splitlines() if l.strip()]
    print(f"== cProfile {label} ({n} steps)"); print("\n".join(l[:170] for l in lines[:top + 8]), flush=True)

def run(name, mode, tag, iters=30, do_prof=0, px=224, bs=128):
    model = _env.build(name, px).cuda()
    r = _env.bench_one(model, mode, px, bs, 10, iters)
    step = _env.make_step(model, mode, bs, px)
    h, w = host_ms(step)
    r.update(model=name, mode=mode, tag=tag, host_ms=h, wall_ms=w, objs=len(gc.get_objects()))
    print(f"{name:24s} {mode} {tag:14s} ms {r['ms_per_batch']:7.2f} host {h:7.2f} wall {w:7.2f} GiB {r['peak_mem_gib']:.2f} objs {r['objs']}", flush=True); res.append(r)
    if do_prof: prof(step, do_prof, f"{side}_{name}_{mode}_{tag}")
    del model, step; torch.cuda.empty_cache()

if side == "project":
    run("mambavision_t", "infer", "fresh")
    run("mambavision_t", "train", "fresh")
    run("vim_tiny_patch16_224", "train", "projected")
    import vssm.mamba as M
    P = sys.modules[M.projected_scan.__module__]
    pe = P.plain_eager
    P.plain_eager = lambda *a: False
    run("vim_tiny_patch16_224", "train", "composed")
    P.plain_eager = pe
    run("vim_tiny_patch16_224", "infer", "projected")
    for n, m in (("vim_small_patch16_224", "train"), ("vmamba_tiny_s1l8", "train"), ("vmamba_small_s2l15", "infer"), ("simba_s", "train"), ("simba_s", "infer")):
        run(n, m, "pollute", iters=3)
    run("mambavision_t", "infer", "after")
    run("mambavision_t", "train", "after")
    gc.collect(); gc.freeze()
    run("mambavision_t", "infer", "after_gcfreeze")
else:
    run("mambavision_t_official", "infer", "fresh")
    run("mambavision_t_official", "train", "fresh")
    run("vim_tiny_official", "train", "fresh")
    run("vim_tiny_official", "infer", "fresh")
json.dump(res, open(f"{out}/diag_{side}.json", "w"), indent=0)
