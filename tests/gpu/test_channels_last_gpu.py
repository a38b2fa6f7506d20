"""Maps stored channels_last on CUDA against NCHW maps (skipped without CUDA): MambaVision's (`MambaVision.channels_last`,
the default) at full size, 224 and a non-square size with padded windows, and SiMBA-S's stem (`Stem.channels_last`); a
training step's output and every gradient in float32 (TF32 off), and under bf16 autocast as the benchmarks run it."""

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
    return out.detach(), {n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None}


def _rel(a: torch.Tensor, b: torch.Tensor, floor: float = 0.0) -> float:
    return ((a - b).norm() / b.norm().clamp_min(max(floor, 1e-30))).item()


def _compare(nchw, nhwc, x, autocast: bool, prefix: str = "", grad_tol: float | None = None):
    """Outputs, and the gradients of the parameters whose names start with `prefix` (to `grad_tol`, else ten times the
    outputs' tolerance)."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        ref, ref_grads = _step(nchw, x, autocast)
        out, grads = _step(nhwc, x, autocast)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    tol = 3e-2 if autocast else 1e-4  # bf16: rounding points differ between the layouts' kernels
    assert _rel(out, ref) < tol, _rel(out, ref)
    # gradients that are zero up to rounding (a conv bias feeding a training-mode BatchNorm, the last MLP's bias
    # before the final one: the norm removes the mean) are measured against a thousandth of the largest gradient
    floor = 1e-3 * max(g.norm().item() for g in ref_grads.values())
    assert grads.keys() == ref_grads.keys()
    errs = sorted(((_rel(grads[n], ref_grads[n], floor), n) for n in grads if n.startswith(prefix)), reverse=True)
    assert errs[0][0] < (grad_tol or 10 * tol), errs[:5]


@pytest.mark.parametrize("size", [(224, 224), (256, 192)])
@pytest.mark.parametrize("autocast", [False, True])
def test_mambavision_channels_last_maps_match_nchw_maps(size, autocast):
    torch.manual_seed(0)
    nchw = timm.create_model("mambavision_t", drop_path_rate=0.0).cuda().train()
    nchw.channels_last = False
    nhwc = copy.deepcopy(nchw)
    nhwc.channels_last = True
    x = torch.randn(4, 3, *size, device="cuda")
    with torch.no_grad():
        assert all(is_channels_last(m) for m in nhwc.forward_intermediates(x, intermediates_only=True))
    _compare(nchw, nhwc, x, autocast)


@pytest.mark.parametrize("autocast", [False, True])
def test_simba_channels_last_stem_matches_nchw(autocast):
    torch.manual_seed(0)
    nchw = timm.create_model("simba_s", drop_path_rate=0.0).cuda().train()
    nchw.stem.channels_last = False
    nhwc = copy.deepcopy(nchw)
    nhwc.stem.channels_last = True
    seen = []
    nhwc.stem.proj.register_forward_pre_hook(lambda mod, args: seen.append(is_channels_last(args[0])))
    nchw.stem.proj.register_forward_pre_hook(lambda mod, args: seen.append(is_channels_last(args[0])))
    # the stem's parameters: further in, EinFFT's soft-shrink turns rounding differences into gradient differences of
    # up to 8e-3 in float32 whatever the layout, and the stem's gradients pass through it (CPU, float32: 6e-4)
    _compare(nchw, nhwc, torch.randn(2, 3, 224, 224, device="cuda"), autocast, prefix="stem.",
             grad_tol=0.3 if autocast else 5e-3)
    assert seen == [False, True]  # nchw's step ran first
