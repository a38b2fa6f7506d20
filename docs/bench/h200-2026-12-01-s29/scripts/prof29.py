"""Stop 29: torch.profiler per config (SMID / states-last) for one model step: GPU time by kernel, wall per step."""
import dataclasses, os, sys, time
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import torch
import timm
from torch.profiler import profile, ProfilerActivity
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd as tf
import _env
NEW = tf.triton_forward.__kwdefaults__["tiles"]
OLD = dataclasses.replace(NEW, fwd_smid=False)
name, px, bs, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
model = (timm.create_model(name, img_size=px) if px != 224 else timm.create_model(name)).cuda()
step = _env.make_step(model, mode, bs, px)
calls = []
orig = tf.triton_forward
def spy(*a, **kw):
    u, dl = a[0], a[1]
    calls.append((tuple(u.shape), u.stride(), dl.stride(), kw.get("backward"), kw.get("states_T")))
    return orig(*a, **kw)
for tag, tiles in (("smid", NEW), ("old", OLD), ("smid", NEW)):
    orig.__kwdefaults__["tiles"] = tiles
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t) / 5 * 1e3
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    ev.sort(key=lambda e: -e.device_time_total)
    tot = sum(e.device_time_total for e in ev) / 3e3
    print(f"== {name} {px} b{bs} {mode} {tag}: wall {wall:.2f} ms/step, GPU {tot:.2f} ms/step")
    for e in ev[:8]:
        print(f"   {e.device_time_total/3e3:8.2f} ms  {e.count//3:5d}x  {e.key[:90]}")
tf.triton_forward = spy
import vssm.kernels.selective_scan.op as op
step()
print("calls:", calls[:3], len(calls))
