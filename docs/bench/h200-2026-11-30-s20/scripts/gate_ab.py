"""The shared gate outside the scan (working tree) against inside it (HEAD's projected.py, copied in as
projected_old), alternating in one process: GPU kernel time per step (profiler), median wall ms per step
(CUDA events, synced) and peak GiB. argv: name mode [batch]."""
import sys, statistics, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
from torch.profiler import profile, ProfilerActivity
import vssm
from vssm.kernels.selective_scan import projected as P
from vssm.kernels.selective_scan import projected_old as O
name, mode = sys.argv[1], sys.argv[2]
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 128
m = _env.build(name).cuda()
step = _env.make_step(m, mode, batch, 224)
new_cls, old_cls = P._ProjectedScan, O._ProjectedScan
for rep in range(2):
    for tag, cls in (("gate_outside", new_cls), ("gate_inside", old_cls)):
        P._ProjectedScan = cls
        for _ in range(4): step()
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        ts = []
        b, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(10):
            b.record(); step(); e.record(); e.synchronize(); ts.append(b.elapsed_time(e))
        peak = torch.cuda.max_memory_allocated() / 2**30
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(3): step()
            torch.cuda.synchronize()
        k = {}
        for ev in p.events():
            if ev.device_type == torch.autograd.DeviceType.CUDA:
                k[ev.name[:50]] = k.get(ev.name[:50], 0) + ev.device_time / 3e3
        top = sorted(k.items(), key=lambda kv: -kv[1])[:8]
        print(f"{name} {mode} b{batch} {tag:12s} wall {statistics.median(ts):.2f} ms ({batch * 1e3 / statistics.median(ts):.0f} img/s) "
              f"GPU {sum(k.values()):.2f} ms/step peak {peak:.2f} GiB; " + "; ".join(f"{v:.2f} {n[:32]}" for n, v in top), flush=True)
