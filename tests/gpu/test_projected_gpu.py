"""GPU tests of `projected_scan` (delta recomputed in the backward) at full size (skipped without CUDA):
against its composed form in float64 on the same (rounded) values, and the memory its forward keeps."""

from __future__ import annotations

import pytest
import torch
from launch_spy import LaunchSpy

from vssm.kernels import selective_scan
from vssm.kernels.selective_scan.projected import project, projected_scan

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _l2(a, b) -> float:
    """Relative L2 error; a reference of norm below 1 counts as 1 (at L = 1 the true dA is exactly 0)."""
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1.0))


def _make(batch, K, dim, L, N, R, dtype, token_major, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, device="cuda", generator=g) * scale).to(dtype)

    u = rnd(batch, K, L, dim).transpose(2, 3) if token_major else rnd(batch, K, dim, L)
    w_x = rnd(K, R + 2 * N, dim, scale=dim ** -0.5)
    w_dt = rnd(K, dim, R, scale=R ** -0.5)
    A = -(torch.rand(K, dim, N, device="cuda", generator=g) + 0.5)
    D = torch.randn(K, dim, device="cuda", generator=g)
    z = rnd(batch, dim, L)
    bias = torch.randn(K, dim, device="cuda", generator=g) * 0.5 - 2
    return [u, w_x, w_dt, A, D, z, bias]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("batch,K,dim,L,N,R,token_major", [
    (16, 2, 768, 197, 16, 24, False),  # Vim-S's mixer
    (8, 1, 640, 196, 16, 20, True),  # one direction, token-major u
    (2, 2, 384, 1, 16, 12, False),  # L = 1
])
@pytest.mark.parametrize("pad,batch_inner", [(1, True), (1, False), (8, False)],
                         ids=["batch_inner_rows", "rows", "padded_rows"])
def test_projected_full_size(dtype, tol, batch, K, dim, L, N, R, token_major, pad, batch_inner, monkeypatch):
    from vssm.kernels import layout

    monkeypatch.setattr(layout, "PAD_TOKENS", pad)  # padded: x_dbl, delta and the gradients on rows of 8k tokens
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        tensors = _make(batch, K, dim, L, N, R, dtype, token_major)
        if not token_major:  # u as the conv op writes it (batch inside the rows: 2-D matmuls over all tokens)
            u = tensors[0]
            tensors[0] = layout.new_rows(u, tuple(u.shape), batch_inner=batch_inner).copy_(u)
        orders = ["natural", "reverse"][:K]
        leaves = [t.detach().requires_grad_(True) for t in tensors]
        y = projected_scan(*leaves, delta_softplus=True, orders=orders, combine="mean")
        dy = torch.randn_like(y)
        grads = torch.autograd.grad(y, leaves, dy)
        ref_leaves = [t.detach().double().requires_grad_(True) for t in tensors]
        u, w_x, w_dt, A, D, z, bias = ref_leaves
        delta, B, C = project(u, w_x, w_dt, N)
        y_ref = selective_scan(u, delta, A, B, C, D, z, bias, True, orders=orders, combine="mean")
        ref_grads = torch.autograd.grad(y_ref, ref_leaves, dy.double())
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    assert _l2(y, y_ref) < tol
    for name, a, r in zip(("u", "x_proj_weight", "dt_proj_weight", "A", "D", "z", "delta_bias"), grads, ref_grads):
        assert _l2(a, r) < tol, name


def _inference_and_composed(tensors, N: int):
    """Both directions through `projected_scan` without a gradient, and the float64 composed form of the same values
    (TF32 off for the reference's matmuls)."""
    kw = dict(orders=["natural", "reverse"], combine="mean")
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            y = projected_scan(*tensors, delta_softplus=True, **kw)
            u, w_x, w_dt, A, D, z, bias = (t.double() for t in tensors)
            delta, B, C = project(u, w_x, w_dt, N)
            y_ref = selective_scan(u, delta, A, B, C, D, z, bias, True, **kw)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return y, y_ref


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("batch,dim,L", [(128, 768, 197), (64, 384, 197), (128, 384, 33)])
def test_projected_inference_walks_token_major(dtype, tol, batch, dim, L, monkeypatch):
    """Inference as the Vim mixer runs it: u token-major stored (K, batch, L, D) (the conv op's token-major
    output), no gradient: the forward walks (the launch counted) and matches the float64 composed form."""
    from vssm.kernels.selective_scan import triton_fwd

    spy = LaunchSpy(triton_fwd._fwd_walk_kernel)
    monkeypatch.setattr(triton_fwd, "_fwd_walk_kernel", spy)
    tensors = _make(batch, 2, dim, L, 16, dim // 16, dtype, False)
    tensors[0] = tensors[0].permute(1, 0, 3, 2).contiguous().permute(1, 0, 3, 2)
    y, y_ref = _inference_and_composed(tensors, 16)
    assert len(spy.launches) == 1 and y.dtype == dtype and y.transpose(1, 2).is_contiguous()
    assert _l2(y, y_ref) < tol


def test_projected_forward_keeps_less_than_composed():
    tensors = [t.detach().requires_grad_(True) for t in _make(64, 2, 768, 197, 16, 24, torch.bfloat16, False)]
    orders = ["natural", "reverse"]

    def kept(fn):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        y = fn()
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated() - base - y.numel() * y.element_size()

    def composed():
        delta, B, C = project(tensors[0], tensors[1], tensors[2], 16)
        return selective_scan(tensors[0], delta, *tensors[3:4], B, C, *tensors[4:], True, orders=orders,
                              combine="mean")

    def fused():
        return projected_scan(*tensors, delta_softplus=True, orders=orders, combine="mean")

    fused(), composed()  # warm: what the first call allocates lazily (cuBLAS workspaces) is not kept by either
    kept_fused, kept_comp = kept(fused), kept(composed)
    delta_bytes = tensors[0].numel() * 2
    y_bytes = delta_bytes // 2  # the fused path keeps the ungated output (batch, D, L) for its shared gate
    assert kept_fused <= kept_comp - delta_bytes + y_bytes, (kept_fused, kept_comp, delta_bytes)


@pytest.mark.parametrize("shape", [(128, 768, 197), (8, 384, 6085), (3, 70, 33)])
def test_gate_kernels_full_size(shape):
    """The gate outside the scan (`selective_scan.gate`): Triton kernels against the torch formulas, bf16, y
    channel-major as the scan writes it, z a token-major half of an in_proj output."""
    from vssm.kernels.selective_scan.gate import gate_backward, gate_forward

    b, dim, L = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    y = torch.randn(b, dim, L, device="cuda", generator=g).bfloat16()
    z = (torch.randn(b, L, 2 * dim, device="cuda", generator=g) * 2).bfloat16()[:, :, dim:].transpose(1, 2)
    dout = torch.randn(b, L, dim, device="cuda", generator=g).bfloat16().transpose(1, 2)
    got = (gate_forward(y, z, True), *gate_backward(dout, y, z, True, True))
    want = (gate_forward(y, z, False), *gate_backward(dout, y, z, True, False))
    for a, w in zip(got, want):
        assert a.shape == w.shape and a.stride() == w.stride() and a.dtype == w.dtype
        torch.testing.assert_close(a.float(), w.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("K,M,R,N", [(2, 384, 12, 8 * 6085), (2, 384, 12, 128 * 197), (1, 640, 20, 8 * 196 + 3),
                                     (2, 768, 24, 4097), (3, 100, 1, 999), (2, 96, 64, 3136)])
def test_thin_matmul_full_size(dtype, K, M, R, N):
    """`triton_thin.thin_bmm` (dt_proj) against float64 products of the same values, into channel-major and
    token-major outputs, with x a row slice of a wider matrix (x_dbl's dt rows)."""
    from vssm.kernels.selective_scan.triton_thin import thin_bmm

    g = torch.Generator(device="cuda").manual_seed(0)
    w = (torch.randn(K, M, R, device="cuda", generator=g) * R ** -0.5).to(dtype)
    x = torch.randn(K, R + 32, N, device="cuda", generator=g).to(dtype)[:, 3:3 + R]
    ref = torch.bmm(w.double(), x.double())
    for out in (torch.empty(K, M, N, device="cuda", dtype=dtype),
                torch.empty(K, N, M, device="cuda", dtype=dtype).transpose(1, 2)):
        thin_bmm(w, x, out)
        err = (out.double() - ref).abs()
        # one rounding of a float32 sum of exact products: half an ulp of the output dtype, plus float32 slack
        assert (err <= ref.abs() * (2.0 ** -8 if dtype == torch.bfloat16 else 2.0 ** -11) + 1e-5).all()


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2), (torch.float32, 1e-4)])
def test_projected_inference_vim_ti_1248(dtype, tol, monkeypatch):
    """Vim-Ti at 1248 (batch 8, 6085 tokens, dt rank 12) without a gradient, u channel-major with the batch inside the
    rows as the conv op writes it: dt_proj runs the thin kernel in bfloat16 (unaligned 24-byte rows) and cuBLAS in
    float32 (48-byte rows), and the output matches the float64 composed form."""
    from vssm.kernels import layout
    from vssm.kernels.selective_scan import triton_thin

    spy = LaunchSpy(triton_thin._thin_bmm)
    monkeypatch.setattr(triton_thin, "_thin_bmm", spy)
    tensors = _make(8, 2, 384, 6085, 16, 12, dtype, False)
    u = tensors[0]
    tensors[0] = layout.new_rows(u, tuple(u.shape), batch_inner=True).copy_(u)
    y, y_ref = _inference_and_composed(tensors, 16)
    assert len(spy.launches) == (1 if dtype == torch.bfloat16 else 0)
    assert _l2(y, y_ref) < tol


def test_projected_directions_sum_to_projected_scan():
    """`projected_scan_directions` at Vim-Ti's 1248 shape (bfloat16, no gradient): each direction's output stored
    (batch, L, K, D), and their float32 sum rounded once is projected_scan's output bit for bit (its two-direction sum
    is one such add)."""
    from vssm.kernels import layout
    from vssm.kernels.selective_scan.projected import projected_scan_directions

    tensors = _make(8, 2, 384, 6085, 16, 12, torch.bfloat16, False)
    u = tensors[0]
    tensors[0] = layout.new_rows(u, tuple(u.shape), batch_inner=True).copy_(u)
    kw = dict(delta_softplus=True, orders=["natural", "reverse"], combine="mean")
    with torch.inference_mode():
        parts = projected_scan_directions(*tensors, **kw)
        whole = projected_scan(*tensors, **kw)
    assert parts.shape == (8, 2, 384, 6085) and parts.permute(0, 3, 1, 2).is_contiguous()
    assert torch.equal((parts[:, 0].float() + parts[:, 1].float()).to(torch.bfloat16), whole)
    with pytest.raises(ValueError, match="inference only"):
        projected_scan_directions(*(t.detach().requires_grad_(t.is_floating_point()) for t in tensors), **kw)


@pytest.mark.parametrize("autocast", [True, False])
def test_vim_fused_residual(autocast, monkeypatch):
    """Vim-Ti's blocks without a gradient on CUDA: the mixer adds the residual inside out_proj's matmul (one addmm per
    block, the directions summed by the matmul); logits against the three-launch form (directions' sum, out_proj,
    add), bfloat16 autocast and float32 (TF32 off)."""
    import timm

    import vssm.mamba as vm

    torch.manual_seed(0)
    model = timm.create_model("vim_tiny_patch16_224", img_size=320).cuda().eval()
    x = torch.randn(2, 3, 320, 320, device="cuda")
    calls = []
    fused = vm.Mamba._residual_out
    monkeypatch.setattr(vm.Mamba, "_residual_out", lambda self, *a: calls.append(1) or fused(self, *a))
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        out = {}
        for on in (True, False):
            monkeypatch.setattr(vm, "FUSED_RESIDUAL", on)
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                out[on] = model(x).float()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    assert len(calls) == 24
    rel = (out[True] - out[False]).abs().max().item() / out[False].abs().max().item()
    assert rel <= (0.03 if autocast else 1e-5), rel


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("batch,L,C,R,N,W,channel_major", [
    (8, 6085, 384, 12, 16, 4, True),  # Vim-Ti at 1248: the chunk forward's channel-major u
    (128, 197, 768, 24, 16, 4, False),  # Vim-S at 224, token-major u (the walking forward)
    (3, 1, 384, 12, 16, 4, True),  # L = 1
    (2, 301, 192, 7, 32, 3, False),  # odd rank, 2N = 64, three taps
])
def test_conv_scan_directions_full_size(dtype, batch, L, C, R, N, W, channel_major):
    """`conv_scan_directions` (conv, x_proj and dt_proj in one kernel) against the conv op followed by
    `projected_scan_directions` on the same inputs (the path it replaces; cuBLAS's products, TF32 off), and its u,
    x_dbl, delta against float64 products of its own stored values."""
    from vssm.kernels.conv1d import depthwise_conv1d
    from vssm.kernels.conv1d.op import depthwise_conv1d_reference, new_conv_out
    from vssm.kernels.selective_scan import triton_conv_proj
    from vssm.kernels.selective_scan.op import new_like_layout
    from vssm.kernels.selective_scan.projected import conv_scan_directions, projected_scan_directions

    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        g = torch.Generator(device="cuda").manual_seed(0)
        K = 2
        x = torch.randn(batch, L, 2 * C, device="cuda", generator=g).to(dtype)[:, :, :C]  # in_proj's x half
        taps = torch.randn(K, C, W, device="cuda", generator=g) * 0.5
        bias = torch.randn(K, C, device="cuda", generator=g) * 0.2
        offs = [-(W - 1), 0]
        w_x = (torch.randn(K, R + 2 * N, C, device="cuda", generator=g) * C ** -0.5).to(dtype)
        w_dt = (torch.randn(K, C, R, device="cuda", generator=g) * R ** -0.5).to(dtype)
        A = -(torch.rand(K, C, N, device="cuda", generator=g) + 0.5)
        D = torch.randn(K, C, device="cuda", generator=g)
        db = torch.randn(K, C, device="cuda", generator=g) * 0.5 - 2
        z = torch.randn(batch, L, C, device="cuda", generator=g).to(dtype).transpose(1, 2)
        kw = dict(delta_softplus=True, orders=["natural", "reverse"], combine="mean")
        with torch.no_grad():
            got = conv_scan_directions(x, taps, bias, offs, w_x, w_dt, A, D, z, db, channel_major=channel_major, **kw)
            u = depthwise_conv1d(x, taps, bias, offs, silu=True, channel_major=channel_major).transpose(2, 3)
            want = projected_scan_directions(u, w_x, w_dt, A, D, z, db, **kw)
            assert got.shape == want.shape and got.stride() == want.stride()
            assert _l2(got, want) <= (1e-2 if dtype == torch.bfloat16 else 1e-5)
            # the kernel's own outputs against float64 products of what it stored
            u2 = new_conv_out(x, K, channel_major).transpose(2, 3)
            x_dbl = new_like_layout(u2, (batch, K, R + 2 * N, L), dtype)
            delta = new_like_layout(u2, (batch, K, C, L), dtype)
            triton_conv_proj.conv_project(x, taps, bias, offs, w_x, w_dt, u2, x_dbl, delta)
            u_ref = depthwise_conv1d_reference(x.double(), taps.double(), bias.double(), offs, True).transpose(2, 3)
            one = 2.0 ** -8 if dtype == torch.bfloat16 else 1e-6
            assert _l2(u2, u_ref) <= one
            assert _l2(x_dbl, torch.matmul(w_x.double(), u2.double())) <= one
            assert _l2(delta, torch.matmul(w_dt.double(), x_dbl[:, :, :R].double())) <= one
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def test_mamba_inference_in_proj_cast_once():
    """Under CUDA autocast without a gradient the mixer's in_proj weight is cast once and reused (no cast launch per
    call), with the values of autocast's own cast; after an in-place change of the weight the new values are used."""
    from vssm.mamba import Mamba

    torch.manual_seed(0)
    m = Mamba(192, bidirectional=True).cuda().eval()
    x = torch.randn(2, 197, 192, device="cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        got = m._in_proj(x)
        want = m.in_proj(x)
        assert got.dtype == want.dtype == torch.bfloat16 and torch.equal(got, want)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            m._in_proj(x)
        casts = [e for e in prof.events() if e.name == "aten::_to_copy"]
        assert len(casts) == 1, [e.name for e in casts]  # x's cast; the weight's is reused
    with torch.no_grad():
        m.in_proj.weight.mul_(2)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        assert torch.equal(m._in_proj(x), m.in_proj(x))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("batch,L", [(8, 6085), (1, 197)])
def test_mamba_inference_conv_scan_full_size(monkeypatch, dtype, tol, batch, L):
    """Vim-Ti's mixer at inference where the scan's forward does not walk (1248 px, batch 8; 224 px, batch 1): the
    residual form through `conv_scan_directions` (one launch of the conv-projection kernel) against the three-launch
    path and the composed form."""
    import vssm.mamba as vm
    from vssm.kernels.selective_scan import triton_conv_proj

    torch.manual_seed(0)
    m = vm.Mamba(192, d_state=16, bidirectional=True).cuda().eval()
    x = torch.randn(batch, L, 192, device="cuda")
    r = torch.randn(batch, L, 192, device="cuda")
    launched = []
    real = triton_conv_proj.conv_project
    monkeypatch.setattr(triton_conv_proj, "conv_project", lambda *a, **k: launched.append(1) or real(*a, **k))
    outs = {}
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        for name, fused, composed in (("fused", True, False), ("apart", False, False), ("composed", False, True)):
            monkeypatch.setattr(vm, "FUSED_CONV_PROJECT", fused)
            m.composed = composed
            outs[name] = m(x, residual=r)
    assert launched == [1]
    assert _l2(outs["fused"] - r, outs["apart"] - r) < tol
    assert _l2(outs["fused"] - r, outs["composed"] - r) < tol
