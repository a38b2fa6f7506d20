"""Inference peak memory per module, one side per process. argv: model name (e.g. mambavision_t or
mambavision_t_official). Prints, for every module whose forward raised the running peak, the peak and the
allocated bytes after it (MiB), then the final peak, under the e2e protocol (bf16 autocast, inference_mode)."""
import sys, torch
sys.path.insert(0, "/tmp/src/.official")
import _env
name = sys.argv[1]; batch = int(sys.argv[2]) if len(sys.argv) > 2 else 128
m = _env.build(name).cuda().eval()
x = torch.randn(batch, 3, 224, 224, device="cuda")
rows = []
def pre(mod, inp, n=None):
    rows.append(("enter " + mod._vname, torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()))
def post(mod, inp, out):
    rows.append(("exit  " + mod._vname, torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()))
for n, mod in m.named_modules():
    mod._vname = n or "<root>"
    if n.count(".") <= 4:
        mod.register_forward_pre_hook(pre); mod.register_forward_hook(post)
MiB = 2**20
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
    m(x)
torch.cuda.synchronize()
print(f"first forward: peak {torch.cuda.max_memory_allocated()/MiB:.1f} MiB")
last = 0
for n, a, p in rows:
    if p > last + 0.5 * MiB:
        print(f"  {n:60s} alloc {a/MiB:9.1f}  peak {p/MiB:9.1f}")
        last = p
rows.clear(); torch.cuda.reset_peak_memory_stats()
base = torch.cuda.memory_allocated()
with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
    m(x)
torch.cuda.synchronize()
MiB = 2**20
print(f"{name} b{batch}: params+input allocated {base/MiB:.1f} MiB, peak {torch.cuda.max_memory_allocated()/MiB:.1f} MiB")
last = 0
for n, a, p in rows:
    if p > last + 0.5 * MiB:
        print(f"  {n:60s} alloc {a/MiB:9.1f}  peak {p/MiB:9.1f}")
        last = p
