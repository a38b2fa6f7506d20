"""SiMBA-S, one side per process (the harness's _env.build + bench_one, bf16, batch 128 at 224, 10 + 30), train then
infer. argv: side (cl: stem maps channels_last, the new default; nchw)."""
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
side = sys.argv[1]
_env.use_project()
m = _env.build("simba_s").cuda()
m.stem.channels_last = side == "cl"
for mode in ("train", "infer"):
    r = _env.bench_one(m, mode, 224, 128, 10, 30)
    print("simba_s", side, mode, {k: round(v, 3) for k, v in r.items()}, flush=True)
    torch.cuda.empty_cache()
