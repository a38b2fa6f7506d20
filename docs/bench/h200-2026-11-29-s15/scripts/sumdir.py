"""The forward at Vim-Ti 1248 (batch 8, both directions, token-major): op time and the direction sum alone."""
import torch
from triton.testing import do_bench
from vssm.kernels.selective_scan.cases import make_inputs
from vssm.kernels.selective_scan.op import prepare
from vssm.kernels.selective_scan.triton_fwd import triton_forward
x = make_inputs(8, 384, 6085, 16, 1, K=2, shared=("z",), dtype=torch.bfloat16, device="cuda", token_major=True)
args = prepare(*(x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True, ["natural", "reverse"],
               None, "mean", "triton", grad=False)[:11]
print("forward both directions", round(do_bench(lambda: triton_forward(*args), rep=200, return_mode="median"), 3), "ms")
d = torch.empty(8, 2, 6085, 384, device="cuda", dtype=torch.bfloat16).transpose(2, 3)
out = torch.empty(8, 6085, 384, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
print("torch.sum over K", round(do_bench(lambda: torch.sum(d, dim=1, out=out), rep=100, return_mode="median"), 3), "ms")
print("torch.add of the two", round(do_bench(lambda: torch.add(d[:, 0], d[:, 1], out=out), rep=100, return_mode="median"), 3), "ms")
