"""MambaVision-T / -B training (bf16, batch 128 at 224), the harness's bench_one (10 warmup + 30 iterations), one
process, alternated: the default forward (no walk with a backward to follow: the chunk kernel on the mixer's
token-major u and delta) against the walk allowed with a backward (`_walks` asked as if none followed)."""
import sys
sys.path.insert(0, "/tmp/src/.official")
import _env
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd
orig = triton_fwd._walks
def walk_with_backward(tiles, batch, dpg, dim, NP, L, tokens_inner, backward):
    return orig(tiles, batch, dpg, dim, NP, L, tokens_inner, False)
for name in ("mambavision_t", "mambavision_b"):
    m = _env.build(name, 224).cuda()
    for label, fn in [("default", orig), ("walk w/ bwd", walk_with_backward)] * 2:
        triton_fwd._walks = fn
        r = _env.bench_one(m, "train", 224, 128, 10, 30)
        print(name, label, {k: round(v, 3) for k, v in r.items()}, flush=True)
    triton_fwd._walks = orig
    del m
