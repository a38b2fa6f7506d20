"""MambaVision's maps stored channels_last on CUDA (`MambaVision.channels_last`, the default) against NCHW maps
(skipped without CUDA): full-size MambaVision-T at 224 and a non-square size with padded windows, a training step's
output and every gradient in float32 (TF32 off), and under bf16 autocast as the benchmarks run it."""

from __future__ import annotations

import copy

import pytest
import timm
import torch

import vssm  # noqa: F401  (registers the models)
from vssm.models.mambavision import is_channels_last

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _step(model, x, autocast: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = model(x).float()
    weight = torch.linspace(-1, 1, out.numel(), device=out.device).view_as(out)
    (out * weight).sum().backward()
    return out.detach(), {n: p.grad.float() for n, p in model.named_parameters()}


def _rel(a: torch.Tensor, b: torch.Tensor, floor: float = 0.0) -> float:
    return ((a - b).norm() / b.norm().clamp_min(max(floor, 1e-30))).item()


@pytest.mark.parametrize("size", [(224, 224), (256, 192)])
@pytest.mark.parametrize("autocast", [False, True])
def test_channels_last_maps_match_nchw_maps(size, autocast):
    torch.manual_seed(0)
    nchw = timm.create_model("mambavision_t", drop_path_rate=0.0).cuda().train()
    nchw.channels_last = False
    nhwc = copy.deepcopy(nchw)
    nhwc.channels_last = True
    x = torch.randn(4, 3, *size, device="cuda")
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        ref, ref_grads = _step(nchw, x, autocast)
        out, grads = _step(nhwc, x, autocast)
        with torch.no_grad():
            maps = nhwc.forward_intermediates(x, intermediates_only=True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert all(is_channels_last(m) for m in maps)
    tol = 3e-2 if autocast else 1e-4  # bf16: rounding points differ between the layouts' kernels
    assert _rel(out, ref) < tol, _rel(out, ref)
    # gradients that are zero up to rounding (a conv bias feeding a training-mode BatchNorm, the last MLP's bias
    # before the final one: the norm removes the mean) are measured against a thousandth of the largest gradient
    floor = 1e-3 * max(g.norm().item() for g in ref_grads.values())
    errs = sorted(((_rel(grads[n], ref_grads[n], floor), n) for n in grads), reverse=True)
    assert errs[0][0] < 10 * tol, errs[:5]
