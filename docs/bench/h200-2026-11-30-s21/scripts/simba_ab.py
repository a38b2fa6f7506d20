"""SiMBA-S training (bf16, batch 128 at 224), the harness's bench_one (10 warmup + 30 iterations), backward
tiles A/B in one process: the default (short-sequence tiles at N = 64, L <= 256) against the previous tiles
everywhere (Tiles.bwd_short_max_L = 0), alternated twice."""
import dataclasses, sys
sys.path.insert(0, "/tmp/src/.official")
import _env
import vssm  # noqa
from vssm.kernels.selective_scan import triton_bwd
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
new = DEFAULT_TILES
old = dataclasses.replace(DEFAULT_TILES, bwd_short_max_L=0)
m = _env.build("simba_s", 224).cuda()
for label, tiles in [("short tiles", new), ("previous", old), ("short tiles", new), ("previous", old)]:
    triton_bwd.triton_backward_chunks.__kwdefaults__["tiles"] = tiles
    r = _env.bench_one(m, "train", 224, 128, 10, 30)
    print(label, r, flush=True)
