"""Training step time (the harness's bench_one, bf16, batch 128 at 224, 10 + 30) of one model in this process; run
once per tree (PYTHONPATH) in fresh processes, alternating. argv: model."""
import sys
sys.path.insert(0, "/tmp/src/.official")  # stop 23 ran it from the staged copy
sys.path.insert(0, ".official")  # or from the checkout root
import _env
import vssm  # noqa
name = sys.argv[1]
m = _env.build(name).cuda()
r = _env.bench_one(m, "train", 224, 128, 10, 30)
print(sys.argv[2] if len(sys.argv) > 2 else "", name, {k: round(v, 3) for k, v in r.items()}, flush=True)
