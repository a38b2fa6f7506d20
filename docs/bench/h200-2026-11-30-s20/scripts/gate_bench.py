"""The gate kernels alone at Vim-S's and Vim-Ti@1248's shapes (bf16; y contiguous channel-major as the scan writes
it, z a token-major half of an in_proj output, out / dz token-major, dy float32): do_bench medians per tile
shape, against the bytes floor at 4.25 TB/s."""
import torch, triton
import vssm
from vssm.kernels.selective_scan import gate_triton as G
from vssm.kernels.selective_scan.gate import new_like_gate
for (b, D, L) in [(128, 768, 197), (8, 384, 6085)]:
    y = torch.randn(b, D, L, device="cuda", dtype=torch.bfloat16)
    z = torch.randn(b, L, 2 * D, device="cuda", dtype=torch.bfloat16)[:, :, D:].transpose(1, 2)
    dout = torch.randn(b, L, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    out = new_like_gate(z, y.dtype); dz = new_like_gate(z, z.dtype); dy = torch.empty(b, D, L, device="cuda")
    n = b * D * L
    ff, fb = 3 * n * 2 / 4.25e12 * 1e3, (4 * n * 2 + n * 4) / 4.25e12 * 1e3
    ref = y.float() * torch.nn.functional.silu(z.float())
    for bd, bl, w in [(64, 64, 4), (32, 128, 4), (128, 32, 4), (64, 128, 8), (128, 64, 8), (32, 32, 2)]:
        G.launch_forward(y, z, out, bd, bl, w); torch.cuda.synchronize()
        ok = torch.allclose(out.float(), ref, rtol=1e-2, atol=1e-2)
        tf = triton.testing.do_bench(lambda: G.launch_forward(y, z, out, bd, bl, w), warmup=20, rep=100)
        tb = triton.testing.do_bench(lambda: G.launch_backward(dout, y, z, dy, dz, bd, bl, w), warmup=20, rep=100)
        print(f"({b},{D},{L}) tile {bd}x{bl} w{w}: fwd {tf*1e3:.1f} us (floor {ff*1e3:.1f}) bwd {tb*1e3:.1f} us (floor {fb*1e3:.1f}) ok={ok}", flush=True)
    t_eager = triton.testing.do_bench(lambda: y * torch.nn.functional.silu(z), warmup=20, rep=100)
    print(f"  torch y * silu(z): {t_eager*1e3:.1f} us")
