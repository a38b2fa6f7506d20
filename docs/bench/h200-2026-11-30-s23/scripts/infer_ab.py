"""Vim-Ti inference (the harness's bench_one, bf16) at 512 / batch 32 and 224 / batch 128 in this process: run once
per tree (PYTHONPATH) in fresh processes, alternating. argv: tag."""
import sys
sys.path.insert(0, "/tmp/src/.official")
import _env
import vssm  # noqa
for px, bs in ((512, 32), (224, 128), (1024, 8)):
    m = _env.build("vim_tiny_patch16_224", px).cuda()
    r = _env.bench_one(m, "infer", px, bs, 10, 30)
    print(sys.argv[1], px, bs, {k: round(v, 3) for k, v in r.items()}, flush=True)
