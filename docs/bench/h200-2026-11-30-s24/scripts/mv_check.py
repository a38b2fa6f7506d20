"""MambaVision-T on the GPU, bf16 autocast: the training path (projected scan) against the composed path
(has_fast_kernel patched False for the scan part only is not possible, so: the same model, float32, outputs and
gradients of the fast path against the CPU float64 composed path)."""
import torch, timm, vssm  # noqa
import vssm.models.mambavision as mv
torch.manual_seed(0)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
m = timm.create_model("mambavision_t").cuda().train()
x = torch.randn(4, 3, 224, 224, device="cuda")
calls = []
orig = mv.projected_scan
mv.projected_scan = lambda *a, **k: calls.append(1) or orig(*a, **k)
out = m(x); dy = torch.randn_like(out)
g = torch.autograd.grad(out, list(m.parameters()), dy)
mv.projected_scan = orig
md = m.double().cpu(); xd = x.double().cpu()
out_r = md(xd); g_r = torch.autograd.grad(out_r, list(md.parameters()), dy.double().cpu())
rel = lambda a, b: ((a.double().cpu() - b).norm() / b.norm().clamp_min(1e-30)).item()
worst = max((rel(a, b), n) for (n, _), a, b in zip(md.named_parameters(), g, g_r))
print("fp32 CUDA projected path vs fp64 CPU composed: calls", len(calls), "out rel", rel(out, out_r), "worst grad", worst)
