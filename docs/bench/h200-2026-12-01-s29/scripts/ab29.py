"""Stop 29: SMID (states-middle chunk forward) against the states-last chunk forward inside whole models, alternating
in one process (the harness's make_step; medians of CUDA-event times per batch)."""
import dataclasses, os, statistics, sys
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import torch
import timm
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd as tf
import _env
NEW = tf.triton_forward.__kwdefaults__["tiles"]
OLD = dataclasses.replace(NEW, fwd_smid=False)
RUNS = [("vim_tiny_patch16_224", 1248, 8, "infer"), ("vim_small_patch16_224", 224, 128, "train"),
        ("vim_tiny_patch16_224", 224, 128, "train"), ("vim_tiny_patch16_224", 1024, 8, "infer")]
def timed(step, n):
    b, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    for _ in range(n):
        b.record(); step(); e.record(); e.synchronize(); out.append(b.elapsed_time(e))
    return out
for name, px, bs, mode in RUNS:
    model = (timm.create_model(name, img_size=px) if px != 224 else timm.create_model(name)).cuda()
    step = _env.make_step(model, mode, bs, px)
    res = {"smid": [], "old": []}
    for r in range(4):
        for tag, tiles in (("smid", NEW), ("old", OLD)) if r % 2 == 0 else (("old", OLD), ("smid", NEW)):
            tf.triton_forward.__kwdefaults__["tiles"] = tiles
            for _ in range(3):
                step()
            res[tag] += timed(step, 8)
    tf.triton_forward.__kwdefaults__["tiles"] = NEW
    s, o = statistics.median(res["smid"]), statistics.median(res["old"])
    print(f"{name} {px} b{bs} {mode}: smid {s:.2f} ms, old {o:.2f} ms, old/smid {o/s:.3f}", flush=True)
    del model, step
    torch.cuda.empty_cache()
