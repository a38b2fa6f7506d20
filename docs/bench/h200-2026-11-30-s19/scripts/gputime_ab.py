"""GPU kernel time per step (profiler, CUDA activity) of one model, batch-inner conv output (HEAD) against
batch-outer (the old _new_out), alternating in one process. argv: name mode."""
import sys, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
from torch.profiler import profile, ProfilerActivity
from vssm.kernels import layout
from vssm.kernels.conv1d import op as cop
new = cop._new_out
def old(x, K, channel_major):
    batch, L, C = x.shape
    if channel_major:
        return layout.new_rows(x, (batch, K, C, L)).transpose(2, 3)
    return x.new_empty((batch, K, L, C))
name, mode = sys.argv[1], sys.argv[2]
m = _env.build(name).cuda()
step = _env.make_step(m, mode, 128, 224)
for rep in range(2):
    for tag, fn in (("batch_inner", new), ("batch_outer", old)):
        cop._new_out = fn
        for _ in range(5): step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(3): step()
            torch.cuda.synchronize()
        k = {}
        for e in p.events():
            if e.device_type == torch.autograd.DeviceType.CUDA:
                k[e.name[:60]] = k.get(e.name[:60], 0) + e.device_time / 3e3
        top = sorted(k.items(), key=lambda kv: -kv[1])[:6]
        print(f"{name} {mode} {tag:12s} GPU {sum(k.values()):.2f} ms/step; " + "; ".join(f"{v:.2f} {n[:40]}" for n, v in top), flush=True)
