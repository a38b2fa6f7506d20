"""One model of one side (the harness's _env.build + bench_one, bf16, batch 128 at 224, 10 + 30), train then infer,
in this process; run in fresh processes alternating sides. argv: name (e.g. mambavision_t or mambavision_t_official)."""
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
name = sys.argv[1]
if not name.endswith("_official"):
    _env.use_project()
m = _env.build(name).cuda()
for mode in ("train", "infer"):
    r = _env.bench_one(m, mode, 224, 128, 10, 30)
    print(name, mode, {k: round(v, 3) for k, v in r.items()}, flush=True)
    torch.cuda.empty_cache()
