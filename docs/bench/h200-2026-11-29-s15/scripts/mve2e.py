"""MambaVision-T/B img/s and peak GiB, project and official, each side in its own fresh process, with the
e2e harness's own protocol (.official/_env.bench_one, bf16, batch 128 at 224, 10 + 30 iterations)."""
import json, subprocess, sys
sys.path.insert(0, ".official")
if len(sys.argv) > 1:  # worker
    import torch, _env
    side = sys.argv[1]
    rows = []
    for label in ("T", "B"):
        name = f"mambavision_{label.lower()}" + ("_official" if side == "official" else "")
        for mode in ("infer", "train"):
            m = _env.build(name).cuda()
            r = _env.bench_one(m, mode, 224, 128, 10, 30)
            del m; torch.cuda.empty_cache()
            rows.append(dict(model=label, mode=mode, **r))
    print("ROWS " + json.dumps(rows))
    sys.exit()
res = {}
for side in ("project", "official"):
    out = subprocess.run([sys.executable, __file__, side], capture_output=True, text=True).stdout
    res[side] = json.loads(out.split("ROWS ", 1)[1])
print("| MambaVision | mode | project img/s | official img/s | ratio | project GiB | official GiB |")
for a, b in zip(res["project"], res["official"]):
    print(f"| {a['model']} | {a['mode']} | {a['img_per_s']:.1f} | {b['img_per_s']:.1f} | {a['img_per_s']/b['img_per_s']:.2f} | {a['peak_mem_gib']:.2f} | {b['peak_mem_gib']:.2f} |")
