"""Kernel breakdown of one Vim-S bidirectional scan call, forward + backward (bf16, channel-major)."""
import sys, torch
from torch.profiler import profile, ProfilerActivity
from triton.testing import do_bench
from vssm.kernels import selective_scan
from vssm.kernels.selective_scan.cases import make_inputs
tm = len(sys.argv) > 1 and sys.argv[1] == "tm"
x = make_inputs(128, 768, 197, 16, 1, K=2, shared=("z",), dtype=torch.bfloat16, device="cuda", token_major=tm)
leaf = {k: (v.detach().requires_grad_(True) if v is not None and v.is_floating_point() else v) for k, v in x.items()}
dout = torch.randn(128, 768, 197, device="cuda", dtype=torch.bfloat16)
def fwd():
    return selective_scan(**leaf, delta_softplus=True, orders=["natural", "reverse"], combine="mean")
def fb():
    out = fwd()
    torch.autograd.backward(out, dout)
for _ in range(3): fb()
torch.cuda.synchronize()
print("fwd", round(do_bench(fwd, rep=200, return_mode="median"), 3), "ms; fwd+bwd", round(do_bench(fb, rep=300, return_mode="median"), 3), "ms")
with profile(activities=[ProfilerActivity.CUDA]) as p:
    for _ in range(5): fb()
    torch.cuda.synchronize()
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=50))
