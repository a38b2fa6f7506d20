"""Vim inference A/B in one process (H200, bf16, batch 128 at 224, eval, no_grad): the mixer's token-major
layout with the walking forward (default now) against the channel-major layout with the chunk kernel
(vssm.mamba.scan_walks patched to False). Logit differences and do_bench medians per batch."""
import sys
import torch, triton, timm
import vssm, vssm.mamba as mm
torch.manual_seed(0)
orig = mm.scan_walks
for name, batch, res in [("vim_small_patch16_224", 128, 224), ("vim_tiny_patch16_224", 128, 224),
                         ("vim_tiny_patch16_224", 8, 1248)]:
    kw = {} if res == 224 else dict(img_size=res)
    m = timm.create_model(name, **kw).cuda().eval().to(torch.bfloat16)
    mix = next(mod for mod in m.modules() if isinstance(mod, mm.Mamba))
    x = torch.randn(batch, 3, res, res, device="cuda", dtype=torch.bfloat16)
    out = {}
    t = {}
    for mode in ("walk", "chunk"):
        mm.scan_walks = orig if mode == "walk" else (lambda *a: False)
        with torch.no_grad():
            out[mode] = m(x).float()
            t[mode] = triton.testing.do_bench(lambda: m(x), warmup=5, rep=60)
    mm.scan_walks = orig
    d = ((out["walk"] - out["chunk"]).abs().max() / out["chunk"].abs().max()).item()
    agree = (out["walk"].argmax(-1) == out["chunk"].argmax(-1)).float().mean().item()
    print(f"{name} b{batch} @{res}: walk {t['walk']:.2f} ms ({batch / t['walk'] * 1e3:.0f} img/s), chunk "
          f"{t['chunk']:.2f} ms ({batch / t['chunk'] * 1e3:.0f} img/s), walks={orig(batch, mix.d_inner, mix.d_state)}; "
          f"max rel logit diff {d:.2e}, argmax agreement {agree:.3f}", flush=True)
    del m
