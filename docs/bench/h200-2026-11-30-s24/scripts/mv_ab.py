"""MambaVision training + inference (the harness's bench_one, bf16, batch 128 at 224, 10 + 30) of one model in this
process, the tree from PYTHONPATH; run once per tree in fresh processes, alternating. argv: model tag [modes]."""
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import vssm  # noqa
import torch
name, tag = sys.argv[1], sys.argv[2]
modes = sys.argv[3].split(",") if len(sys.argv) > 3 else ["train", "infer"]
m = _env.build(name).cuda()
for mode in modes:
    r = _env.bench_one(m, mode, 224, 128, 10, 30)
    print(tag, name, mode, {k: round(v, 3) for k, v in r.items()}, vssm.__file__, flush=True)
    torch.cuda.empty_cache()
