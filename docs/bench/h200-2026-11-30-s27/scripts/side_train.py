"""One model's training row with the harness's protocol (_env.build + bench_one, bf16, batch 128 at 224, 10 + 30) in
this process. argv: name (e.g. vim_tiny_patch16_224 or vim_tiny_official)."""
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
name = sys.argv[1]
if not name.endswith("_official"):
    _env.use_project()
m = _env.build(name).cuda()
r = _env.bench_one(m, "train", 224, 128, 10, 30)
print(name, "train", {k: round(v, 3) for k, v in r.items()}, flush=True)
