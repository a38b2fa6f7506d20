"""Gate kernels at Vim-S's shape, 128 x 32 tiles, 4 warps: y channel-major (as the scan writes it), y channel-major
with rows padded to 200 tokens (16-byte aligned rows), y token-major (no transposition anywhere): do_bench medians."""
import torch, triton
import vssm
from vssm.kernels.selective_scan import gate_triton as G
from vssm.kernels.selective_scan.gate import new_like_gate
b, D, L = 128, 768, 197
z = torch.randn(b, L, 2 * D, device="cuda", dtype=torch.bfloat16)[:, :, D:].transpose(1, 2)
dout = torch.randn(b, L, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
ys = {"cm": torch.randn(b, D, L, device="cuda", dtype=torch.bfloat16),
      "cm_pad200": torch.randn(b, D, 200, device="cuda", dtype=torch.bfloat16)[:, :, :L],
      "tm": torch.randn(b, L, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)}
for name, y in ys.items():
    out = new_like_gate(z, y.dtype); dz = new_like_gate(z, z.dtype)
    for dyl in ("cm", "tm"):
        dy = torch.empty(b, D, L, device="cuda") if dyl == "cm" else torch.empty(b, L, D, device="cuda").transpose(1, 2)
        tf = triton.testing.do_bench(lambda: G.launch_forward(y, z, out, 128, 32, 4), warmup=20, rep=100)
        tb = triton.testing.do_bench(lambda: G.launch_backward(dout, y, z, dy, dz, 128, 32, 4), warmup=20, rep=100)
        print(f"y {name:10s} dy {dyl}: fwd {tf*1e3:.1f} us  bwd {tb*1e3:.1f} us", flush=True)
