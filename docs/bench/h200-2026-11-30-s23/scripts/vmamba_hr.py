"""VMamba-T inference at high resolution, batch 1-2 (stage 1's forward cuts time into segments: the two-pass carry
from 384 chunks), bf16, the harness's bench_one (10 warm-up + 30 iterations), two passes against the serial carry
(Tiles.carry_two_pass_min_chunks raised past any length), alternating in one process; the chunks per call printed."""
import sys
sys.path.insert(0, "/tmp/src/.official")
import _env
import vssm  # noqa
from vssm.kernels.selective_scan import triton_common
T = triton_common.DEFAULT_TILES
two = T.carry_two_pass_min_chunks
for px, bs in [(1024, 1), (1024, 2), (768, 1), (512, 1)]:
    try:
        m = _env.build("vmamba_tiny_s1l8").cuda()  # size-free: built at 224, fed px
    except Exception as e:
        print("build failed", px, type(e).__name__, e, flush=True)
        continue
    for label, val in [("two-pass", two), ("serial", 1 << 30)] * 2:
        object.__setattr__(T, "carry_two_pass_min_chunks", val)
        r = _env.bench_one(m, "infer", px, bs, 10, 30)
        print(label, px, bs, {k: round(v, 3) for k, v in r.items()}, flush=True)
    object.__setattr__(T, "carry_two_pass_min_chunks", two)
    del m
