"""GPU kernel time per step of one model (profiler, CUDA activity): the forward's per-direction outputs laid out
as out with K outermost (HEAD's _per_direction_out) against the batch-outer layout before (for a token-major
out: (batch, K, L, D) storage), alternating in one process. argv: name mode."""
import sys, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
from torch.profiler import profile, ProfilerActivity
from vssm.kernels.selective_scan import triton_fwd as tf
new = tf._per_direction_out
def old(out, K):
    batch, dim, L = out.shape
    if out.stride(1) == 1 and dim > 1:
        return out.new_empty((batch, K, L, dim)).transpose(2, 3)
    return out.new_empty((batch, K, dim, L))
calls = []
def spy(fn):
    def f(out, K):
        calls.append(1)
        return fn(out, K)
    return f
name, mode = sys.argv[1], sys.argv[2]
m = _env.build(name).cuda()
step = _env.make_step(m, mode, 128, 224)
for rep in range(2):
    for tag, fn in (("K_outer", new), ("batch_outer", old)):
        tf._per_direction_out = spy(fn)
        for _ in range(5): step()
        torch.cuda.synchronize()
        calls.clear()
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(3): step()
            torch.cuda.synchronize()
        k = {}
        for e in p.events():
            if e.device_type == torch.autograd.DeviceType.CUDA:
                k[e.name[:60]] = k.get(e.name[:60], 0) + e.device_time / 3e3
        top = sorted(k.items(), key=lambda kv: -kv[1])[:5]
        print(f"{name} {mode} {tag:12s} GPU {sum(k.values()):.2f} ms/step, {len(calls)/3:.0f} split forwards/step; "
              + "; ".join(f"{v:.2f} {n[:40]}" for n, v in top), flush=True)
