"""Vim-Ti inference, bench_one (bf16, 10 + 30): the rows given in argv ("px:batch"), in this one process, in order
(the e2e runs 512 / 32 before 1024 / 8 in the project's process)."""
import os, sys
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch
_env.use_project()
for row in sys.argv[1:]:
    px, bs = map(int, row.split(":"))
    m = _env.build("vim_tiny_patch16_224", px).cuda()
    r = _env.bench_one(m, "infer", px, bs, 10, 30)
    print(sys.argv[1:], px, bs, {k: round(v, 3) for k, v in r.items()}, flush=True)
    del m; torch.cuda.empty_cache()
