"""The depthwise conv1d op (kernels/conv1d): reference against F.conv1d, the op's gradients, and the
Triton kernels under TRITON_INTERPRET=1 (in a child process, as in test_selective_scan_triton.py)
against the float64 reference, outputs and every gradient, over kernel sizes 1-5 and 7, causal /
anti-causal / "same" offsets, with and without bias and SiLU, odd lengths, L = 1, strided x, tiles
small enough that the backward runs several token blocks, chunks and channel blocks."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from interpreted import run_as_script

from vssm.kernels import depthwise_conv1d, depthwise_conv1d_reference


def _conv1d_torch(x, weight, bias, offset, silu):
    """One tap set through F.conv1d on (batch, C, L): the independent definition."""
    W = weight.shape[-1]
    left = -offset
    right = offset + W - 1
    xp = F.pad(x.transpose(1, 2), (max(left, 0), max(right, 0)))
    if left < 0:
        xp = xp[..., -left:]
    y = F.conv1d(xp, weight.unsqueeze(1), bias, groups=x.shape[2])[..., : x.shape[1]]
    y = F.silu(y) if silu else y
    return y.transpose(1, 2)


@pytest.mark.parametrize("W", [1, 2, 3, 4])
@pytest.mark.parametrize("L", [1, 5, 17])
def test_reference_matches_conv1d(W, L):
    g = torch.Generator().manual_seed(W * 100 + L)
    x = torch.randn(2, L, 6, generator=g, dtype=torch.float64)
    w = torch.randn(3, 6, W, generator=g, dtype=torch.float64)
    b = torch.randn(3, 6, generator=g, dtype=torch.float64)
    offsets = [-(W - 1), 0, -((W - 1) // 2)]
    out = depthwise_conv1d_reference(x, w, b, offsets, silu=True)
    for k, off in enumerate(offsets):
        torch.testing.assert_close(out[:, k], _conv1d_torch(x, w[k], b[k], off, True), rtol=1e-12, atol=1e-12)


def test_anticausal_is_flipped_causal():
    """offset 0 with mirrored taps = the causal conv of the reversed sequence, reversed back (Vim's branch b)."""
    x = torch.randn(2, 11, 5, dtype=torch.float64)
    w = torch.randn(5, 4, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    causal_rev = depthwise_conv1d(x.flip(1), w, b, [-3], silu=True)[:, 0].flip(1)
    anti = depthwise_conv1d(x, w.flip(-1), b, [0], silu=True)[:, 0]
    torch.testing.assert_close(anti, causal_rev, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("silu", [True, False])
def test_op_gradcheck(bias, silu):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 7, 12, generator=g, dtype=torch.float64)[:, :, ::2].requires_grad_(True)  # strided
    w = torch.randn(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = (x, w) + ((b,) if bias else ())
    torch.autograd.gradcheck(
        lambda x, w, *rest: depthwise_conv1d(x, w, rest[0] if rest else None, [-2, 0], silu=silu), inputs
    )


def test_errors_name_the_argument():
    x = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="`x`"):
        depthwise_conv1d(x[0], torch.randn(4, 3))
    with pytest.raises(ValueError, match="`weight`"):
        depthwise_conv1d(x, torch.randn(3, 3))
    with pytest.raises(ValueError, match="`bias`"):
        depthwise_conv1d(x, torch.randn(4, 3), torch.randn(5))
    with pytest.raises(ValueError, match="`offsets`"):
        depthwise_conv1d(x, torch.randn(2, 4, 3), offsets=[0])


def test_channel_major_layout(monkeypatch):
    from vssm.kernels import layout

    monkeypatch.setattr(layout, "PAD_TOKENS", 1)  # whatever VSSM_PAD_TOKENS says: unpadded rows here
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    w = torch.randn(2, 5, 3, dtype=torch.float64)
    a = depthwise_conv1d(x, w, None, [-2, 0], silu=True)
    b = depthwise_conv1d(x, w, None, [-2, 0], silu=True, channel_major=True)
    # stored (K, batch, L, C) and (K, C, batch, L): either way each tap set's output is one matrix over the batch
    assert a.transpose(0, 1).is_contiguous() and b.permute(1, 3, 0, 2).is_contiguous()
    for out in (a, b):
        m = layout.token_matrix(out[:, 1].transpose(1, 2))
        assert m is not None and m.data_ptr() == out[:, 1].data_ptr()
        torch.testing.assert_close(m, out[:, 1].permute(2, 0, 1).reshape(5, 18), rtol=0, atol=0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_channel_major_rows_padded(monkeypatch):
    """With vssm.kernels.layout.PAD_TOKENS = 8 the channel-major output is a view of rows of 16 tokens for
    L = 9 (what cuBLAS needs of a matmul operand's leading dimension); the values do not change."""
    from vssm.kernels import layout

    x = torch.randn(2, 9, 5, dtype=torch.float64)
    w = torch.randn(2, 5, 3, dtype=torch.float64)
    a = depthwise_conv1d(x, w, None, [-2, 0], silu=True)
    monkeypatch.setattr(layout, "PAD_TOKENS", 8)
    b = depthwise_conv1d(x, w, None, [-2, 0], silu=True, channel_major=True)
    assert b.transpose(2, 3).stride() == (16, 5 * 2 * 16, 2 * 16, 1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Triton under the interpreter

CASES = [
    # name, (batch, L, C), W, offsets, bias, silu, dtype, strided x and bias (name ending in _cm: channel-major out)
    ("vim_pair", (2, 37, 24), 4, [-3, 0], True, True, "float32", True),
    ("vim_pair_cm", (2, 37, 24), 4, [-3, 0], True, True, "float32", True),
    # channel-major rows padded to a multiple of 8 tokens (vssm.kernels.layout), the gradient arriving so
    ("vim_pair_cm_pad8", (2, 37, 24), 4, [-3, 0], True, True, "float32", True),
    ("causal_nobias", (1, 9, 10), 4, [-3], False, True, "float32", False),
    ("same_w3", (2, 20, 12), 3, [-1], False, True, "float32", True),
    ("same_w4_noact", (2, 13, 8), 4, [-1], True, False, "float32", False),
    ("w2_three_sets", (1, 16, 6), 2, [-1, 0, -1], True, True, "float32", False),
    ("w1", (2, 8, 5), 1, [0], True, True, "float32", False),
    ("L1", (3, 1, 7), 4, [-3, 0], True, True, "float32", False),
    ("bf16", (2, 29, 16), 4, [-3, 0], True, True, "bfloat16", True),
    # wider than four taps: the backward's general form (the tap tiles reloaded for dw, one (WP, BL, BC) accumulator)
    ("w5_same", (2, 19, 6), 5, [-2], True, True, "float32", True),
    ("w7_pair_noact", (1, 15, 5), 7, [-6, 0], False, False, "float32", False),
    # the most tap sets the kernels take (offsets as scalar arguments), each with its own offset
    ("eight_sets", (2, 11, 6), 3, [-2, 0, -1, 1, 2, -3, 4, -13], True, True, "float32", True),
]
TOL = {"float32": 1e-5, "bfloat16": 2e-2}
# tiny tiles: 4 tokens x 4 channels per block, 8 tokens per backward program
TINY = dict(fwd_BL=4, fwd_BC=4, fwd_cm_BL=8, fwd_cm_BC=4, bwd_BL=4, bwd_BC=4, bwd_chunk=8, fwd_warps=1, bwd_warps=1)


def _child() -> dict:
    import gc

    from vssm.kernels import layout
    from vssm.kernels.conv1d.triton_conv1d import ConvTiles, triton_conv_backward, triton_conv_forward

    def live_tensors():
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    results = {}
    # the kernels keep no tensor alive between calls (a device tensor cached on first use outlives a
    # CUDA graph's memory pool: torch.compile "reduce-overhead" refuses it)
    x, w = torch.randn(1, 9, 4), torch.randn(2, 4, 3)
    before = live_tensors()
    out = triton_conv_forward(x, w, None, (-2, 0), True, tiles=ConvTiles(**TINY))
    grads = triton_conv_backward(torch.randn_like(out), x, w, None, (-2, 0), True, ConvTiles(**TINY))
    del out, grads
    results["kept_tensors"] = live_tensors() - before
    for name, (batch, L, C), W, offsets, has_bias, silu, dtype, strided in CASES:
        g = torch.Generator().manual_seed(len(name))
        dt = getattr(torch, dtype)
        K = len(offsets)
        wide = torch.randn(batch, L, 2 * C if strided else C, generator=g).to(dt)
        x = wide[:, :, :C] if strided else wide  # a channel slice of a wider token-major tensor
        w = torch.randn(K, C, W, generator=g) * 0.5
        b = torch.randn(K, 2 * C if strided else C, generator=g) if has_bias else None
        if b is not None and strided:
            b = b[:, ::2]  # a bias read through its channel stride too
        dout = torch.randn(batch, K, L, C, generator=g).to(dt)
        tiles = ConvTiles(**TINY)
        cm = "_cm" in name
        layout.PAD_TOKENS = 8 if name.endswith("_pad8") else 1
        out = triton_conv_forward(x, w, b, tuple(offsets), silu, channel_major=cm, tiles=tiles)
        if cm:  # the layout asked for (rows of padded_len(L) tokens), and a gradient arriving in it
            rows = out.transpose(2, 3)
            assert rows.stride(-1) == 1
            assert rows.stride(0) == layout.padded_len(L) and rows.stride(-2) == batch * layout.padded_len(L)
            assert rows.stride(1) == C * batch * layout.padded_len(L)
            dout = layout.new_rows(x, (batch, K, C, L), dt, batch_inner=True).copy_(dout.transpose(2, 3))
            dout = dout.transpose(2, 3)
        dx, dw, db = triton_conv_backward(dout, x, w, b, tuple(offsets), silu, tiles)
        layout.PAD_TOKENS = 1
        x64 = x.double().requires_grad_(True)
        w64 = w.double().requires_grad_(True)
        b64 = b.double().requires_grad_(True) if b is not None else None
        ref = depthwise_conv1d_reference(x64, w64, b64, offsets, silu)
        grads = torch.autograd.grad(ref, [x64, w64] + ([b64] if b is not None else []), dout.double())
        errs = {}
        for key, got, want in (("out", out, ref), ("dx", dx, grads[0]), ("dw", dw, grads[1]),
                               ("db", db, grads[2] if b is not None else None)):
            if want is None:
                errs[key] = 0.0 if got is None else 1.0
                continue
            got = got.double()
            errs[key] = float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
        errs["shape_ok"] = out.shape == (batch, K, L, C) and dx.shape == x.shape and dw.shape == w.shape
        results[name] = errs
    return results


def test_more_tap_sets_than_the_kernels_take():
    """Past MAX_TAP_SETS the op runs the reference (CUDA too); the kernels' argument packing refuses them."""
    from types import SimpleNamespace

    from vssm.kernels.conv1d import op

    nine = list(range(-4, 5))
    on_cuda = SimpleNamespace(is_cuda=True)  # what `_use_triton` reads of x
    assert op._use_triton(on_cuda, nine[:8]) and not op._use_triton(on_cuda, nine)
    x = torch.randn(1, 6, 3)
    w = torch.randn(9, 3, 2)
    out = depthwise_conv1d(x, w, None, nine, silu=False)
    torch.testing.assert_close(out, depthwise_conv1d_reference(x, w, None, nine, silu=False))
    pytest.importorskip("triton")
    from vssm.kernels.conv1d.triton_conv1d import _offset_args

    assert _offset_args((-3, 0)) == (-3, 0, 0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="at most 8 tap sets"):
        _offset_args(tuple(nine))


@pytest.fixture(scope="module")
def triton_results():
    return run_as_script(__file__, timeout=600)


def test_triton_kernels_keep_no_tensor_between_calls(triton_results):
    assert triton_results["kept_tensors"] == 0


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_triton_interpreter(triton_results, case):
    errs = triton_results[case]
    tol = TOL[next(c for c in CASES if c[0] == case)[6]]
    assert errs.pop("shape_ok")
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"{case}: relative errors above {tol}: {bad}"


if __name__ == "__main__":
    print(json.dumps(_child()))


def test_token_matrix_is_a_view_or_none(monkeypatch):
    """`layout.token_matrix` gives the (M, batch x L) matrix as a view of the same memory (the projections
    write through it with out=) and None wherever the strides do not allow one, never a copy."""
    from vssm.kernels import layout

    monkeypatch.setattr(layout, "PAD_TOKENS", 1)
    t = layout.new_rows(torch.empty(0), (3, 2, 5, 7), batch_inner=True)  # (batch, K, M, L)
    t.copy_(torch.arange(3 * 2 * 5 * 7, dtype=torch.float32).view(3, 2, 5, 7))
    for k in range(2):
        m = layout.token_matrix(t[:, k])
        assert m is not None and m.shape == (5, 21) and m.data_ptr() == t[:, k].data_ptr()
        torch.testing.assert_close(m, t[:, k].transpose(0, 1).reshape(5, 21), rtol=0, atol=0)
        m.add_(1000.0)  # writes land in t
        assert (t[:, k] >= 1000).all()
    assert layout.token_matrix(t[:, 0, :2]) is not None  # a slice of the rows (x_dbl's dt rows) stays one matrix
    assert layout.token_matrix(torch.empty(3, 5, 7)) is None  # batch-outer
    assert layout.token_matrix(torch.empty(1, 5, 7)) is not None  # a batch of one is one matrix either way
    # token-major with the batch's tokens one after the other (a Linear's (batch, L, M) output): column-major
    tm = torch.arange(3 * 7 * 5, dtype=torch.float32).view(3, 7, 5).transpose(1, 2)
    m = layout.token_matrix(tm)
    assert m is not None and m.stride() == (1, 5) and m.data_ptr() == tm.data_ptr()
    torch.testing.assert_close(m, tm.transpose(0, 1).reshape(5, 21), rtol=0, atol=0)
    # token-major, several directions stored (K, batch, L, M): each direction's slice is one matrix
    tk = torch.empty(2, 3, 7, 5).permute(1, 0, 3, 2)  # (batch, K, M, L)
    assert all(layout.token_matrix(tk[:, k]) is not None for k in range(2))
    # token-major with the directions between the batch and the tokens: no matrix
    assert layout.token_matrix(torch.empty(3, 2, 7, 5).permute(0, 1, 3, 2)[:, 0]) is None
    assert layout.token_matrix(tm[:, :, :6]) is None  # a gap between samples: not one evenly spaced sequence
    assert layout.token_matrix(tm[:, :3]) is not None  # fewer channels (x_dbl's dt rows): the same token steps
    monkeypatch.setattr(layout, "PAD_TOKENS", 8)
    padded = layout.new_rows(torch.empty(0), (3, 5, 7), batch_inner=True)
    assert layout.is_batch_inner(padded) and layout.token_matrix(padded) is None  # rows of 8 tokens for 7


def test_direction_matrices_are_views_or_none(monkeypatch):
    """`layout.direction_matrices`: the K directions' (M, batch x L) matrices as one (K, M, batch x L) view whose
    slice k is `token_matrix` of direction k (same memory: batched matmuls write through it), and None where
    `token_matrix` gives none."""
    from vssm.kernels import layout

    monkeypatch.setattr(layout, "PAD_TOKENS", 1)
    channel_major = layout.new_rows(torch.empty(0), (3, 2, 5, 7), batch_inner=True)  # stored (K, M, batch, L)
    token_major = torch.empty(2, 3, 7, 5).permute(1, 0, 3, 2)  # (batch, K, M, L) stored (K, batch, L, M)
    for t in (channel_major, token_major, channel_major[:, :, :2], token_major[:, 1:]):
        t.copy_(torch.randn(t.shape))
        mats = layout.direction_matrices(t)
        assert mats is not None and mats.shape == (t.shape[1], t.shape[2], 3 * 7)
        for k in range(t.shape[1]):
            one = layout.token_matrix(t[:, k])
            assert mats[k].data_ptr() == one.data_ptr() and mats[k].stride() == one.stride()
            torch.testing.assert_close(mats[k], t[:, k].transpose(0, 1).reshape(t.shape[2], 21), rtol=0, atol=0)
    assert layout.direction_matrices(torch.empty(3, 2, 5, 7)) is None  # batch-outer rows
    assert layout.direction_matrices(torch.empty(3, 2, 7, 5).permute(0, 1, 3, 2)) is None  # directions inside the batch


@pytest.mark.parametrize("case", ["batch_inner", "batch_inner_rows", "token_major", "batch_outer", "batch1", "L1", "K1"])
def test_direction_matrices_stack_token_matrices(monkeypatch, case):
    """`layout.direction_matrices` is each direction's `token_matrix`, stacked as one view of the same memory (its
    strides are computed from the 4-D tensor's own), and None exactly where a direction has none."""
    from vssm.kernels import layout

    monkeypatch.setattr(layout, "PAD_TOKENS", 1)
    shape = {"batch1": (1, 2, 5, 7), "L1": (3, 2, 5, 1), "K1": (3, 1, 5, 7)}.get(case, (3, 2, 5, 7))
    if case in ("batch_inner", "batch1", "L1", "K1"):
        t = layout.new_rows(torch.empty(0), shape, batch_inner=True)
    elif case == "batch_inner_rows":  # the dt rows of x_dbl: a slice of each direction's rows
        t = layout.new_rows(torch.empty(0), (3, 2, 9, 7), batch_inner=True)[:, :, 2:7]
    elif case == "token_major":  # (K, batch, L, M) storage
        t = torch.empty(2, 3, 7, 5).permute(1, 0, 3, 2)
    else:
        t = torch.empty(shape)
    t.copy_(torch.arange(t.numel(), dtype=torch.float32).view(t.shape))
    got = layout.direction_matrices(t)
    each = [layout.token_matrix(t[:, k]) for k in range(t.shape[1])]
    if case == "batch_outer":
        assert got is None and all(m is None for m in each)
        return
    assert got is not None and got.data_ptr() == t.data_ptr()
    for k, m in enumerate(each):
        assert m is not None and got[k].stride() == m.stride() and got[k].data_ptr() == m.data_ptr()
        torch.testing.assert_close(got[k], m, rtol=0, atol=0)
