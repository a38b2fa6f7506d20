"""Fused LayerNorm on / off inside one process (VSSM_FUSED_LN is read per call): logits and gradients of
VMamba-T and SiMBA-S under bf16 autocast, batch 8, relative differences."""
import os, torch, timm, vssm  # noqa
torch.backends.cudnn.deterministic = True
for name in ("vmamba_tiny_s1l8", "simba_s"):
    torch.manual_seed(0)
    m = timm.create_model(name, drop_path_rate=0.0).cuda().eval()  # no DropPath: both passes see one network
    x = torch.randn(8, 3, 224, 224, device="cuda")
    out = {}
    for flag in ("0", "1"):
        os.environ["VSSM_FUSED_LN"] = flag
        m.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = m(x)
        y.float().logsumexp(-1).sum().backward()
        out[flag] = (y.detach().float(), {n: p.grad.detach().float().clone() for n, p in m.named_parameters() if p.grad is not None})
    (y0, g0), (y1, g1) = out["0"], out["1"]
    rel = lambda a, b: ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
    worst = max(((rel(g1[n], g0[n]), n) for n in g0), key=lambda t: t[0])
    print(f"{name}: logits rel diff {rel(y1, y0):.2e}; grads: {len(g0)} params, worst rel diff {worst[0]:.2e} ({worst[1]})", flush=True)
os.environ["VSSM_FUSED_LN"] = "1"
