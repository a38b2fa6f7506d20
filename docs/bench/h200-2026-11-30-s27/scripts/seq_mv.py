"""MambaVision-T's training row after SiMBA-S's in one process (the harness's order), then again alone in the
same process after an empty_cache: is the process state what moved MambaVision-T's row?"""
import os, sys, gc
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
_env.use_project()
for name in sys.argv[1:]:
    m = _env.build(name).cuda()
    r = _env.bench_one(m, "train", 224, 128, 10, 30)
    print(name, "train", {k: round(v, 3) for k, v in r.items()}, flush=True)
    del m
    gc.collect()
    torch.cuda.empty_cache()
