"""Do the scan's launches take the fast path inside a MambaVision-T / VMamba-T training step? Counts Triton's own
launch path (JITFunction.run) per step, unprofiled and under torch.profiler, and whether a Triton launch hook is set."""
import sys, time
sys.path.insert(0, "/tmp/src/.official")
import torch
import _env
from triton.runtime.jit import JITFunction
from triton import knobs
calls = {"run": 0}
orig = JITFunction.run
def run(self, *a, **k):
    calls["run"] += 1
    return orig(self, *a, **k)
JITFunction.run = run
for name in sys.argv[1:]:
    m = _env.build(name).cuda()
    step = _env.make_step(m, "train", 128, 224)
    for _ in range(5): step()
    torch.cuda.synchronize()
    calls["run"] = 0
    t = time.perf_counter()
    for _ in range(10): step()
    torch.cuda.synchronize()
    print(name, "unprofiled: Triton slow-path launches per step", calls["run"] / 10, "ms/step", round((time.perf_counter() - t) * 100, 2),
          "hooks", knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook, flush=True)
    from torch.profiler import profile, ProfilerActivity
    calls["run"] = 0
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]):
        print("  inside profiler: hooks", knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook, flush=True)
        for _ in range(3): step()
        torch.cuda.synchronize()
    print("  profiled: Triton slow-path launches per step", calls["run"] / 3, flush=True)
    del m, step
