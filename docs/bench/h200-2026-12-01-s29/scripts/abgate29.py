"""Stop 29: the shared gate inside the scan's forward kernels (inference) against outside (the gate kernel),
alternating in one process; then a torch.profiler kernel list of Vim-Ti at 1248 with the default."""
import os, statistics, sys
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import torch
import timm
from torch.profiler import profile, ProfilerActivity
import vssm  # noqa
from vssm.kernels.selective_scan import projected
import _env
RUNS = [("vim_tiny_patch16_224", 1248, 8, "infer"), ("vim_small_patch16_224", 224, 128, "infer"),
        ("vim_tiny_patch16_224", 224, 128, "infer"), ("vim_tiny_patch16_224", 512, 32, "infer")]
def timed(step, n):
    b, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    for _ in range(n):
        b.record(); step(); e.record(); e.synchronize(); out.append(b.elapsed_time(e))
    return out
for name, px, bs, mode in RUNS:
    model = (timm.create_model(name, img_size=px) if px != 224 else timm.create_model(name)).cuda()
    step = _env.make_step(model, mode, bs, px)
    res = {"in": [], "out": []}
    for r in range(4):
        for tag in ("in", "out") if r % 2 == 0 else ("out", "in"):
            projected.GATE_OUTSIDE_WITHOUT_GRAD = tag == "out"
            for _ in range(3):
                step()
            res[tag] += timed(step, 10)
    projected.GATE_OUTSIDE_WITHOUT_GRAD = False
    i, o = statistics.median(res["in"]), statistics.median(res["out"])
    print(f"{name} {px} b{bs} {mode}: gate in {i:.3f} ms, out {o:.3f} ms, out/in {o/i:.3f}", flush=True)
    if px == 1248:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                step()
            torch.cuda.synchronize()
        ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
        ev.sort(key=lambda e: -e.device_time_total)
        print(f"   GPU {sum(e.device_time_total for e in ev)/3e3:.2f} ms/step")
        for e in ev[:16]:
            print(f"   {e.device_time_total/3e3:8.2f} ms  {e.count//3:5d}x  {e.key[:100]}")
    del model, step
    torch.cuda.empty_cache()
