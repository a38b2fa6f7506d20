"""GPU test of SS2D's core as one autograd node (`vssm.ss2d._Core`, with the four directions' token gradients added
by `add_direction_sum`) against the composed graph at VMamba-T's stage sizes (skipped without CUDA): outputs and
every gradient, float32 and bf16 autocast."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _l2(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("dim,hw,batch", [(96, 56, 16), (384, 14, 32), (768, 7, 16)])
def test_function_core_full_size(dtype, tol, dim, hw, batch):
    from vssm.ss2d import SS2D

    torch.manual_seed(0)
    m = SS2D(dim, d_state=1, ssm_ratio=1.0, d_conv=3).cuda()
    x = torch.randn(batch, hw, hw, dim, device="cuda")
    dy = torch.randn(batch, hw, hw, dim, device="cuda")
    params = dict(m.named_parameters())

    def run(function_core):
        m.function_core = function_core
        xx = x.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            y = m(xx)
        grads = torch.autograd.grad(y.float(), [xx, *params.values()], dy)
        return y, grads

    y, grads = run(True)
    y_ref, grads_ref = run(False)
    assert _l2(y, y_ref) < tol
    for name, a, b in zip(["input", *params], grads, grads_ref):
        assert a.dtype == b.dtype, name
        assert _l2(a, b) < tol, name
