"""Vim-Ti inference at 224, batch 128: the harness protocol (bench_one) repeated, batch-inner conv output
(HEAD) against the batch-outer one (the conv op's old _new_out, monkeypatched), alternating in one process."""
import sys, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
from vssm.kernels import layout
from vssm.kernels.conv1d import op as cop
new = cop._new_out
def old(x, K, channel_major):
    batch, L, C = x.shape
    if channel_major:
        return layout.new_rows(x, (batch, K, C, L)).transpose(2, 3)
    return x.new_empty((batch, K, L, C))
name = sys.argv[1] if len(sys.argv) > 1 else "vim_tiny_patch16_224"
m = _env.build(name).cuda()
for rep in range(3):
    for tag, fn in (("batch_inner", new), ("batch_outer", old)):
        cop._new_out = fn
        for mode in ("infer", "train"):
            r = _env.bench_one(m, mode, 224, 128, 10, 30)
            print(f"{name} {tag:12s} {mode}: {r['img_per_s']:.1f} img/s", flush=True)
cop._new_out = new
