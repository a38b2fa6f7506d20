"""Peak memory as bench_one measures it (reset, then warm-up + timed steps), for one variant in a fresh
process: new (gate outside the scan) or old (HEAD~'s projected.py). Prints the peak after the first step and
after 8, and the modules at which the first step's running peak rose. argv: name mode variant."""
import sys, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
import vssm
from vssm.kernels.selective_scan import projected as P
from vssm.kernels.selective_scan import projected_old as O
name, mode, variant = sys.argv[1], sys.argv[2], sys.argv[3]
if variant == "old":
    P._ProjectedScan = O._ProjectedScan
m = _env.build(name).cuda()
step = _env.make_step(m, mode, 128, 224)
MiB = 2**20
rows = []
def hook(mod, inp, out):
    rows.append((mod._vname, torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()))
for n, mod in m.named_modules():
    mod._vname = n or "<root>"
    if n.count(".") <= 3:
        mod.register_forward_hook(hook)
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
base = torch.cuda.memory_allocated()
step(); torch.cuda.synchronize()
p1 = torch.cuda.max_memory_allocated()
for _ in range(7): step()
torch.cuda.synchronize()
print(f"{name} {mode} {variant}: base {base/MiB:.0f} MiB, peak after 1 step {p1/MiB:.0f}, after 8 {torch.cuda.max_memory_allocated()/MiB:.0f} MiB")
last = 0
for n, a, p in rows[:len(rows) // 8]:
    if p > last + 4 * MiB:
        print(f"   {n:40s} alloc {a/MiB:8.0f} peak {p/MiB:8.0f}"); last = p
