"""GPU tests of the depthwise conv op (Triton) and of the mixers on it, at full size (skipped without CUDA).

The oracle is the op's PyTorch definition in float64 on the same (rounded) values; the mixers are
compared with their composed versions (per-direction calls over flipped copies) in float32 and bf16.
"""

from __future__ import annotations

import pytest
import torch

from vssm.kernels import depthwise_conv1d, depthwise_conv1d_reference

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


@pytest.fixture(autouse=True)
def _no_tf32():
    """float32 means float32 here: cuDNN's convolutions (the composed path) default to TF32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _l2(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch,L,C,W,offsets,bias", [
    (128, 197, 768, 4, [-3, 0], True),  # Vim-S, both directions
    (8, 6085, 384, 4, [-3, 0], True),  # Vim-Ti at 1248
    (64, 196, 640, 3, [-1], False),  # MambaVision "same", x and z halves
    (3, 1, 100, 4, [-3], True),  # L = 1
    (5, 1000, 129, 2, [-1, 0, 0], True),  # odd C, three tap sets
])
def test_conv_op_full_size(dtype, batch, L, C, W, offsets, bias):
    g = torch.Generator(device="cuda").manual_seed(L + C)
    K = len(offsets)
    xz = torch.randn(batch, L, 2 * C, device="cuda", generator=g).to(dtype)
    x = xz[..., C:].requires_grad_(False)  # a strided channel slice
    w = (torch.randn(K, C, W, device="cuda", generator=g) * 0.4).requires_grad_(True)
    b = torch.randn(K, C, device="cuda", generator=g).requires_grad_(True) if bias else None
    xg = x.detach().clone().requires_grad_(True)
    y = depthwise_conv1d(xg, w, b, offsets, silu=True)
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, [xg, w] + ([b] if bias else []), dy)
    x64 = x.double().requires_grad_(True)
    w64 = w.detach().double().requires_grad_(True)
    b64 = b.detach().double().requires_grad_(True) if bias else None
    ref = depthwise_conv1d_reference(x64, w64, b64, offsets, True)
    rgrads = torch.autograd.grad(ref, [x64, w64] + ([b64] if bias else []), dy.double())
    tol = TOL[dtype]
    assert _l2(y, ref) < tol
    for name, a, r in zip(("dx", "dw", "db"), grads, rgrads):
        assert _l2(a, r) < tol, name
    # deterministic: the same call twice gives the same bits
    y2 = depthwise_conv1d(xg, w, b, offsets, silu=True)
    grads2 = torch.autograd.grad(y2, [xg, w] + ([b] if bias else []), dy)
    assert torch.equal(y, y2) and all(torch.equal(a, c) for a, c in zip(grads, grads2))


def _mixer_check(m, x, dtype, tol):
    params = [p for p in m.parameters() if p.requires_grad]
    outs = []
    for composed in (False, True):
        m.composed = composed
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            y = m(x)
        g = torch.autograd.grad(y.float(), [x, *params], torch.ones_like(y, dtype=torch.float32))
        outs.append((y, g))
    m.composed = False
    (y_f, g_f), (y_c, g_c) = outs
    assert _l2(y_f, y_c) < tol
    names = ["input"] + [n for n, p in m.named_parameters() if p.requires_grad]
    for name, a, b in zip(names, g_f, g_c):
        assert _l2(a, b) < tol, name


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_mamba_mixer_full_size(dtype, tol, bidirectional):
    from vssm.mamba import Mamba

    torch.manual_seed(0)
    m = Mamba(384, d_state=16, bidirectional=bidirectional).cuda()
    x = torch.randn(64, 197, 384, device="cuda", requires_grad=True)
    _mixer_check(m, x, dtype, tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
def test_mambavision_mixer_full_size(monkeypatch, dtype, tol):
    """Inference through the conv op equals the F.conv1d path (training keeps F.conv1d: see the mixer)."""
    import vssm.models.mambavision as mv

    torch.manual_seed(0)
    m = mv.MambaVisionMixer(320, d_state=8, d_conv=3).cuda()
    x = torch.randn(64, 196, 320, device="cuda")
    calls = []
    monkeypatch.setattr(mv, "depthwise_conv1d", lambda *a, _o=mv.depthwise_conv1d, **k: calls.append(1) or _o(*a, **k))
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        y = m(x)
        monkeypatch.setattr(mv, "has_fast_kernel", lambda t: False)
        y_ref = m(x)
    assert calls == [1]
    assert _l2(y, y_ref) < tol
