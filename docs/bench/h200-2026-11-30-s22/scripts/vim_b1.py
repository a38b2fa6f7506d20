"""Vim-Ti inference at high resolution and batch 1-2 (where the forward cuts time into segments: two-pass carry),
bf16, the harness's bench_one (10 warm-up + 30 iterations). argv: project | official. The project side alternates
the two-pass carry with the serial carry it replaced (HEAD~'s run_carry, staged as triton_carry_old)."""
import sys
sys.path.insert(0, "/tmp/src/.official")
import _env
side = sys.argv[1]
rows = [(1248, 1), (1248, 2), (1024, 1)]
if side == "official":
    for px, bs in rows:
        m = _env.build("vim_tiny_official", px).cuda()
        print(side, px, bs, {k: round(v, 3) for k, v in _env.bench_one(m, "infer", px, bs, 10, 30).items()}, flush=True)
    sys.exit()
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd, triton_carry_old
new = triton_fwd.run_carry
for px, bs in rows:
    m = _env.build("vim_tiny_patch16_224", px).cuda()
    for label, fn in [("two-pass", new), ("serial", triton_carry_old.run_carry)] * 2:
        triton_fwd.run_carry = fn
        r = _env.bench_one(m, "infer", px, bs, 10, 30)
        print(side, label, px, bs, {k: round(v, 3) for k, v in r.items()}, flush=True)
    triton_fwd.run_carry = new
