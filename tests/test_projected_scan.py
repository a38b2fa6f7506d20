"""`projected_scan` (x_proj / dt_proj inside the op, delta recomputed in the backward) against its composed
form (torch matmuls + `selective_scan`), outputs and every gradient, and what its autograd keeps."""

from __future__ import annotations

import pytest
import torch
from interpreted import run_code

from vssm.kernels import selective_scan
from vssm.kernels.selective_scan.cases import rel_error
from vssm.kernels.selective_scan.projected import project, projected_scan


def _inputs(batch, K, dim, L, N, R, dtype, shared, token_major, gate, with_d, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    if token_major:  # a Linear's output seen channel-second: channels innermost in memory
        u = rnd(batch, K, L, dim).transpose(2, 3)
    else:
        u = rnd(batch, K, dim, L)
    w_x = rnd(K, R + 2 * N, dim, scale=dim ** -0.5)
    w_dt = rnd(K, dim, R, scale=R ** -0.5)
    A = -torch.rand(*((dim, N) if shared else (K, dim, N)), generator=g, dtype=torch.float64).add(0.5)
    A = A.to(torch.float64 if dtype == torch.float64 else torch.float32)  # A stays float32 below float64
    D = rnd(*((dim,) if shared else (K, dim))) if with_d else None
    z = (rnd(batch, dim, L) if shared else rnd(batch, K, dim, L)) if gate else None
    bias = rnd(*((dim,) if shared else (K, dim)), scale=0.5) if with_d else None
    return [u, w_x, w_dt, A, D, z, bias]


def _composed(u, w_x, w_dt, A, D, z, bias, **kw):
    delta, B, C = project(u, w_x, w_dt, A.shape[-1])
    return selective_scan(u, delta, A, B, C, D, z, bias, True, **kw)


def _grads(fn, tensors, dy_seed=3):
    leaves = [t.detach().requires_grad_(True) if t is not None else None for t in tensors]
    out = fn(*leaves)
    dy = torch.randn(out.shape, generator=torch.Generator().manual_seed(dy_seed), dtype=torch.float64).to(out.dtype)
    live = [t for t in leaves if t is not None]
    return out, torch.autograd.grad(out, live, dy)


CASES = [
    # batch, K, dim, L, N, R, orders, shared, token_major, gate, with_d
    (1, 1, 6, 1, 4, 2, None, False, False, True, True),
    (2, 2, 8, 13, 8, 3, ["natural", "reverse"], True, False, True, True),
    (2, 2, 8, 13, 8, 3, ["natural", "reverse"], False, True, False, True),
    (1, 4, 5, 12, 1, 1, ["rows", "cols", "rows_reverse", "cols_reverse"], False, False, True, False),
    (3, 2, 7, 1, 16, 4, ["natural", "reverse"], True, True, True, True),
    (2, 1, 4, 31, 2, 2, None, True, False, False, False),
    (2, 1, 6, 9, 4, 2, None, True, False, True, True),  # one direction, its gate shared (SiMBA's mixer)
]


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("case", CASES)
def test_projected_equals_composed_float64(backend, case):
    batch, K, dim, L, N, R, orders, shared, tm, gate, with_d = case
    tensors = _inputs(batch, K, dim, L, N, R, torch.float64, shared, tm, gate, with_d)
    kw = dict(orders=orders, combine="mean", backend=backend)
    if orders is not None and "rows" in orders:
        kw["grid"] = (3, 4)
    kw_c = dict(kw, orders=orders or ["natural"] * K)
    y, g = _grads(lambda *t: projected_scan(*t, delta_softplus=True, **kw), tensors)
    y_ref, g_ref = _grads(lambda *t: _composed(*t, **kw_c), tensors)
    assert rel_error(y, y_ref) < 1e-12
    names = [n for n, t in zip(["u", "x_proj_weight", "dt_proj_weight", "A", "D", "z", "delta_bias"], tensors)
             if t is not None]
    assert len(g) == len(names)
    for name, a, b in zip(names, g, g_ref):
        assert a.shape == b.shape, name
        assert rel_error(a, b) < 1e-11, name


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.bfloat16, 3e-2)])
def test_projected_low_precision(dtype, tol):
    tensors = _inputs(2, 2, 16, 19, 8, 3, dtype, True, False, True, True, seed=4)
    tensors64 = [t.double() if t is not None else None for t in tensors]
    kw = dict(orders=["natural", "reverse"], combine="mean")
    y, g = _grads(lambda *t: projected_scan(*t, delta_softplus=True, **kw), tensors)
    y_ref, g_ref = _grads(lambda *t: _composed(*t, **kw), tensors64)
    assert y.dtype == dtype and rel_error(y, y_ref) < tol
    for a, b in zip(g, g_ref):
        assert rel_error(a, b) < tol


def test_projected_keeps_no_delta():
    """The eager path saves u, x_dbl, the weights and, with a gate shared by the directions, the ungated
    output (batch, D, L); the composed one keeps delta (batch, K, D, L) and everything else."""
    tensors = _inputs(2, 2, 32, 40, 4, 2, torch.float32, True, False, True, True)
    leaves = [t.detach().requires_grad_(True) if t is not None else None for t in tensors]

    def saved_bytes(fn):
        seen = {}

        def pack(t):
            seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*leaves)
        return sum(seen.values())

    kw = dict(orders=["natural", "reverse"], combine="mean")
    fused = saved_bytes(lambda *t: projected_scan(*t, delta_softplus=True, **kw))
    composed = saved_bytes(lambda *t: _composed(*t, **kw))
    delta_bytes = leaves[0].numel() * 4
    assert fused <= composed - delta_bytes + delta_bytes // 2  # y: one direction's worth


def test_projected_under_compile_matches_eager():
    tensors = _inputs(2, 2, 8, 9, 4, 2, torch.float32, True, False, True, True)
    kw = dict(orders=["natural", "reverse"], combine="mean")

    def f(*t):
        return projected_scan(*t, delta_softplus=True, **kw)

    y = f(*tensors)
    y_c = torch.compile(f, backend="eager", fullgraph=True)(*tensors)
    assert rel_error(y_c, y) < 1e-6


def test_projected_bad_arguments():
    u, w_x, w_dt, A, D, z, bias = _inputs(1, 2, 8, 5, 4, 2, torch.float32, True, False, True, True)
    with pytest.raises(ValueError, match="`u`"):
        projected_scan(u[:, 0], w_x, w_dt, A)
    with pytest.raises(ValueError, match="x_proj_weight"):
        projected_scan(u, w_x[:, 1:], w_dt, A)
    with pytest.raises(ValueError, match="dt_proj_weight"):
        projected_scan(u, w_x, w_dt[:1], A)
    with pytest.raises(ValueError, match="cast the weights"):
        projected_scan(u, w_x.double(), w_dt, A)
    with pytest.raises(ValueError, match="`z`"):
        projected_scan(u, w_x, w_dt, A, D, z[:, :, :3], bias, orders=["natural", "reverse"])


def test_projected_under_autocast_keeps_input_dtype():
    """Under autocast the projections run in the inputs' dtype (the backward recomputes delta outside
    autocast, so the forward must not compute it at a lower precision): same as without autocast."""
    tensors = _inputs(2, 2, 8, 9, 4, 2, torch.float32, True, False, True, True)
    kw = dict(orders=["natural", "reverse"], combine="mean", delta_softplus=True)
    y, g = _grads(lambda *t: projected_scan(*t, **kw), tensors)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_a, g_a = _grads(lambda *t: projected_scan(*t, **kw), tensors)
    assert y_a.dtype == torch.float32
    assert rel_error(y_a, y) < 1e-6
    for a, b in zip(g_a, g):
        assert rel_error(a, b) < 1e-6


# ----------------------------------------------------------------------------------------------
# Rows padded to a multiple of 8 tokens (`vssm.kernels.layout`, VSSM_PAD_TOKENS) and the matmuls' layouts


@pytest.fixture
def pad8(monkeypatch):
    from vssm.kernels import layout

    monkeypatch.setattr(layout, "PAD_TOKENS", 8)


@pytest.mark.parametrize("pad,batch_inner", [(8, False), (1, True), (8, True)],
                         ids=["padded_rows", "batch_inner_rows", "padded_batch_inner_rows"])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("case", [c for c in CASES if not c[8]])  # channel-major u (token-major is not padded)
def test_projected_row_layouts_equal_composed(monkeypatch, pad, batch_inner, backend, case):
    """u as the conv op may write it: rows padded (the op's own tensors, x_dbl, delta and the gradients, are
    then views of wider storage) and / or the batch inside the rows, stored (K, D, batch, L), which x_dbl,
    delta and the gradients follow (unpadded, the projections are 2-D matmuls over batch x L tokens). The
    results are the composed form's, whatever the backend does with such strides."""
    from vssm.kernels import layout
    from vssm.kernels.selective_scan.op import _layout_strides

    monkeypatch.setattr(layout, "PAD_TOKENS", pad)
    batch, K, dim, L, N, R, orders, shared, tm, gate, with_d = case
    tensors = _inputs(batch, K, dim, L, N, R, torch.float64, shared, tm, gate, with_d)
    u = tensors[0]
    tensors[0] = layout.new_rows(u, tuple(u.shape), batch_inner=batch_inner).copy_(u)
    kw = dict(orders=orders, combine="mean", backend=backend)
    if orders is not None and "rows" in orders:
        kw["grid"] = (3, 4)
    kw_c = dict(kw, orders=orders or ["natural"] * K)
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t) or t, lambda t: t):
        y, g = _grads(lambda *t: projected_scan(*t, delta_softplus=True, **kw), tensors)
    y_ref, g_ref = _grads(lambda *t: _composed(*t, **kw_c), tensors)
    assert rel_error(y, y_ref) < 1e-12
    for a, b in zip(g, g_ref):
        assert a.shape == b.shape and rel_error(a, b) < 1e-11
    x_dbl = next(t for t in seen if t.dim() == 4 and t.shape[2] == R + 2 * N)
    if batch_inner:
        assert batch == 1 or layout.is_batch_inner(x_dbl)
        assert batch == 1 or g[0].stride() == _layout_strides(tensors[0])  # du in u's layout
    else:
        assert x_dbl.stride(2) == -(-L // 8) * 8 and x_dbl.stride(3) == 1  # saved as the padded view


def _matmul_layouts(fn, tensors, tmp_path):
    """(op, [(shape, strides) of each tensor argument]) of every batched matmul of fn's forward and backward,
    and of every clone of a broadcast (stride-0) tensor, from a CPU profile (a dispatch mode would send
    the op down its composed path, as under any tracing)."""
    import json

    from torch.profiler import ProfilerActivity, profile

    leaves = [t.detach().requires_grad_(True) if t is not None else None for t in tensors]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        out = fn(*leaves)
        out.backward(torch.ones_like(out))
    trace = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace))
    calls = []
    for ev in json.loads(trace.read_text())["traceEvents"]:
        args = ev.get("args", {})
        dims, strides = args.get("Input Dims"), args.get("Input Strides")
        if not dims or not strides:
            continue
        mats = [(tuple(d), tuple(s)) for d, s in zip(dims, strides) if isinstance(d, list) and len(d) >= 2]
        name = ev.get("name", "")
        if name in ("aten::bmm", "aten::baddbmm", "aten::baddbmm_", "aten::mm", "aten::addmm", "aten::addmm_"):
            calls.append((name, mats))
        elif name == "aten::clone" and mats and 0 in mats[0][1]:
            calls.append(("clone of a broadcast tensor", mats))
    return calls


def _misaligned(shape, stride):
    """Whether a matrix's leading dimension is not a multiple of 8 elements (16 bytes in bf16), which sends
    cuBLAS to its align1 kernels; a matrix of one row or one column has none."""
    rows, cols = shape[-2:]
    if rows == 1 or cols == 1:
        return False
    if stride[-1] == 1:
        return stride[-2] % 8 != 0
    if stride[-2] == 1:
        return stride[-1] % 8 != 0
    return True


@pytest.mark.parametrize("pad", [8, 1])
def test_projected_matmuls_aligned_with_padded_rows(monkeypatch, tmp_path, pad):
    """Every matmul of the fused path (forward and backward) has 16-byte leading dimensions once rows are
    padded, with an odd token count and the model's dimensions multiples of 8; unpadded, the token count
    is a leading dimension and some are not (the profile's align1 kernels). No call copies a broadcast
    weight (torch.matmul's broadcasting clones it batch times)."""
    from vssm.kernels import layout
    from vssm.kernels.layout import new_rows

    monkeypatch.setattr(layout, "PAD_TOKENS", pad)
    tensors = _inputs(2, 2, 16, 13, 8, 8, torch.float32, True, False, True, True)
    tensors[0] = new_rows(tensors[0], tuple(tensors[0].shape)).copy_(tensors[0])
    kw = dict(orders=["natural", "reverse"], combine="mean", backend="reference")
    calls = _matmul_layouts(lambda *t: projected_scan(*t, delta_softplus=True, **kw), tensors, tmp_path)
    assert not [c for c in calls if c[0].startswith("clone")], calls
    projections = [c for c in calls if c[0] in ("aten::bmm", "aten::baddbmm_", "aten::baddbmm")]
    assert len(projections) >= 7  # x_dbl, delta, its recomputation, d dt, du, and the two weight gradients
    bad = [c for c in projections if any(_misaligned(s, st) for s, st in c[1])]
    if pad == 8:
        assert not bad, bad
    else:
        assert bad  # L = 13 as a leading dimension


# ----------------------------------------------------------------------------------------------
# The batch inside the rows (`layout.new_rows(batch_inner=True)`, the conv op's channel-major output)


def test_projected_batch_inner_matmuls_span_directions(monkeypatch, tmp_path):
    """With the batch inside the rows every projection of the fused path, forward and backward (x_dbl,
    delta and its recomputation, d dt, du, both weight gradients), is one batched matmul of every direction's
    (., batch x L) matrix, each weight gradient one 2-D matmul per direction over batch x L tokens; batch-outer u
    keeps a batched matmul per direction (the test of the fallback)."""
    from vssm.kernels import layout

    monkeypatch.setattr(layout, "PAD_TOKENS", 1)
    kw = dict(orders=["natural", "reverse"], combine="mean", backend="reference")
    for batch_inner in (True, False):
        tensors = _inputs(3, 2, 16, 13, 8, 8, torch.float32, True, False, True, True)
        tensors[0] = layout.new_rows(tensors[0], tuple(tensors[0].shape), batch_inner=batch_inner).copy_(tensors[0])
        calls = _matmul_layouts(lambda *t: projected_scan(*t, delta_softplus=True, **kw), tensors, tmp_path)
        flat = [c for c in calls if c[0] in ("aten::mm", "aten::addmm", "aten::addmm_")]
        batched = [c for c in calls if c[0] in ("aten::bmm", "aten::baddbmm_", "aten::baddbmm")]
        if batch_inner:
            _assert_over_directions(batched, flat, 2, 3 * 13)
        else:
            # (on the CPU baddbmm_ runs addmm_ per sample: those are (., L) matrices)
            assert len(batched) >= 7 and not [c for c in flat if any(3 * 13 in shape for shape, _ in c[1])], calls


def _assert_over_directions(batched, flat, K: int, tokens: int) -> None:
    """Five projections (x_dbl, delta and its recomputation, d dt, du) as one batched matmul of the K directions'
    (., batch x L) matrices each, and the two weight gradients as one 2-D matmul per direction over the batch x L
    tokens (on the CPU an in-place baddbmm_ on strided memory runs addmm_ per direction inside it: not counted)."""
    assert len(batched) == 5, batched
    for _, mats in batched:
        assert all(shape[0] == K for shape, _ in mats) and any(tokens in shape[1:] for shape, _ in mats), mats
    weight_grads = [c for c in flat if c[0] == "aten::mm"]
    assert len(weight_grads) == 2 * K, flat
    assert all(any(tokens in shape for shape, _ in m) and all(len(shape) == 2 for shape, _ in m)
               for _, m in weight_grads), weight_grads


def _directions_outer(u: torch.Tensor) -> torch.Tensor:
    """u (batch, K, D, L) copied into token-major storage (K, batch, L, D): the conv op's token-major output."""
    return u.permute(1, 0, 3, 2).contiguous().permute(1, 0, 3, 2)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("case", [c for c in CASES if c[0] > 1 and c[1] > 1], ids=str)
def test_projected_token_major_directions_outer_equal_composed(backend, case):
    """u token-major with the directions outside the batch, (K, batch, L, D) (what the conv op writes when
    the mixer runs without a backward): the projected scan's x_dbl, delta and du follow that layout, and the
    results are the composed form's."""
    from vssm.kernels.selective_scan.op import _layout_strides

    batch, K, dim, L, N, R, orders, shared, _, gate, with_d = case
    tensors = _inputs(batch, K, dim, L, N, R, torch.float64, shared, False, gate, with_d)
    tensors[0] = _directions_outer(tensors[0])
    kw = dict(orders=orders, combine="mean", backend=backend)
    if orders is not None and "rows" in orders:
        kw["grid"] = (3, 4)
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t) or t, lambda t: t):
        y, g = _grads(lambda *t: projected_scan(*t, delta_softplus=True, **kw), tensors)
    y_ref, g_ref = _grads(lambda *t: _composed(*t, **dict(kw, orders=orders or ["natural"] * K)), tensors)
    assert rel_error(y, y_ref) < 1e-12
    for a, b in zip(g, g_ref):
        assert a.shape == b.shape and rel_error(a, b) < 1e-11
    x_dbl = next(t for t in seen if t.dim() == 4 and t.shape[2] == R + 2 * N)
    assert x_dbl.permute(1, 0, 3, 2).is_contiguous()  # (K, batch, L, R + 2N)
    assert _layout_strides(tensors[0]) == (L * dim, batch * L * dim, 1, dim)
    assert g[0].stride() == _layout_strides(tensors[0])  # du in u's layout


def test_projected_token_major_matmuls_span_directions(tmp_path):
    """Token-major u stored (K, batch, L, D): every projection, forward and backward, is one batched matmul of
    every direction's (., batch x L) matrix (each direction's slice is a column-major matrix,
    `layout.direction_matrices`), each weight gradient one 2-D matmul per direction; token-major u with the batch
    outside the directions, (batch, K, L, D), keeps a batched matmul per direction."""
    kw = dict(orders=["natural", "reverse"], combine="mean", backend="reference")
    for outer in (True, False):
        tensors = _inputs(3, 2, 16, 13, 8, 8, torch.float32, True, True, True, True)
        if outer:
            tensors[0] = _directions_outer(tensors[0])
        calls = _matmul_layouts(lambda *t: projected_scan(*t, delta_softplus=True, **kw), tensors, tmp_path)
        batched = [c for c in calls if c[0] in ("aten::bmm", "aten::baddbmm_", "aten::baddbmm")]
        assert not [c for c in calls if c[0].startswith("clone")], calls
        if outer:
            flat = [c for c in calls if c[0] in ("aten::mm", "aten::addmm", "aten::addmm_")]
            _assert_over_directions(batched, flat, 2, 3 * 13)
        else:
            assert len(batched) >= 7


def test_walking_forward_choice():
    """Where the forward walks by default (`Tiles.fwd_walk` None): 2 <= N <= 16, no backward to follow, u and
    delta token-major, L <= 256 and enough (batch row, channel block) programs; True / False force it on / off;
    `scan_walks` answers the same for token-major inputs without a backward."""
    import dataclasses

    from vssm.kernels.selective_scan.projected import scan_walks
    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
    from vssm.kernels.selective_scan.triton_fwd import _walks, forward_walks

    auto = dataclasses.replace(DEFAULT_TILES, fwd_walk=None)

    def walks(batch, dim, N, L=197, tokens_inner=True, backward=False, tiles=auto):
        return _walks(tiles, batch, dim, dim, N, L, tokens_inner, backward)

    assert walks(128, 768, 16)  # Vim-S at 224, batch 128, inference
    assert walks(64, 384, 16)  # Vim-Ti at 224, batch 64
    assert not walks(128, 768, 16, backward=True)  # training: the chunk kernel (the walk was timed without one)
    assert not walks(128, 768, 16, tokens_inner=False)  # channel-major rows: a sector per channel per step
    assert not walks(8, 384, 16, L=6085)  # Vim-Ti at 1248, batch 8: too few programs
    assert not walks(128, 768, 16, L=3136)  # long sequences: not timed with many programs
    assert not walks(128, 768, 1) and not walks(128, 768, 32)
    assert walks(8, 384, 16, L=6085, tokens_inner=False, backward=True, tiles=dataclasses.replace(auto, fwd_walk=True))
    assert not walks(128, 768, 16, tiles=dataclasses.replace(auto, fwd_walk=False))
    assert forward_walks(128, 768, 16, 197, tiles=auto) and not forward_walks(128, 768, 64, 197, tiles=auto)
    assert forward_walks(128, 768, 13, 197, tiles=auto)  # N rounded up to a power of two
    if DEFAULT_TILES.fwd_walk is None:  # VSSM_SCAN_FWD unset
        assert scan_walks(128, 768, 16, 197) and not scan_walks(2, 768, 16, 197)


_TRITON_PADDED = """
import os, torch
from vssm.kernels import layout, selective_scan
from vssm.kernels.selective_scan.projected import project, projected_scan
batch_inner = os.environ["BATCH_INNER"] == "1"
g = torch.Generator().manual_seed(5)
batch, K, dim, L, N, R = 2, 2, 16, 21, 8, 3
u = layout.new_rows(torch.empty(0), (batch, K, dim, L), batch_inner=batch_inner)
u.copy_(torch.randn(batch, K, dim, L, generator=g))
w_x = torch.randn(K, R + 2 * N, dim, generator=g) * dim ** -0.5
w_dt = torch.randn(K, dim, R, generator=g) * R ** -0.5
A = -torch.rand(dim, N, generator=g) - 0.5
D, bias = torch.randn(dim, generator=g), torch.randn(dim, generator=g) * 0.5
z = torch.randn(batch, dim, L, generator=g)
kw = dict(orders=["natural", "reverse"], combine="mean")
leaves = [t.clone().requires_grad_(True) for t in (u, w_x, w_dt, A, D, z, bias)]
y = projected_scan(*leaves, delta_softplus=True, backend="triton", **kw)
dy = torch.randn(y.shape, generator=g)
got = torch.autograd.grad(y, leaves, dy)
ref_leaves = [t.detach().double().requires_grad_(True) for t in (u, w_x, w_dt, A, D, z, bias)]
delta, B, C = project(ref_leaves[0], ref_leaves[1], ref_leaves[2], N)
y_ref = selective_scan(ref_leaves[0], delta, ref_leaves[3], B, C, ref_leaves[4], ref_leaves[5], ref_leaves[6], True,
                       backend="reference", **kw)
want = torch.autograd.grad(y_ref, ref_leaves, dy.double())
assert (y.double() - y_ref).abs().max() <= 1e-4 * y_ref.abs().max()
for a, b in zip(got, want):
    assert (a.double() - b).abs().max() <= 1e-4 * b.abs().max(), (a - b).abs().max()
Lp = layout.padded_len(L)
assert got[0].stride() == ((Lp, dim * batch * Lp, batch * Lp, 1) if batch_inner else (K * dim * Lp, dim * Lp, Lp, 1))
print("ok")
"""


@pytest.mark.parametrize("pad,batch_inner", [(8, False), (1, True), (8, True)])
def test_projected_padded_rows_triton_interpreter(pad, batch_inner):
    """The Triton forward and backward on padded rows and on rows with the batch inside (their gradients
    allocated so too), through the fused path, against the float64 composed reference."""
    pytest.importorskip("triton")
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1", VSSM_PAD_TOKENS=str(pad), BATCH_INNER=str(int(batch_inner)))
    proc = subprocess.run([sys.executable, "-c", _TRITON_PADDED], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


_TRITON_WALK_CHOICE = """
import dataclasses, torch
from vssm.kernels.selective_scan import projected, triton_fwd
from vssm.kernels.selective_scan.projected import project, projected_scan
from vssm.kernels.selective_scan import selective_scan
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
# the default rule with the program threshold lowered to this size (the op passes DEFAULT_TILES)
triton_fwd.triton_forward.__kwdefaults__["tiles"] = dataclasses.replace(DEFAULT_TILES, fwd_walk=None,
                                                                         fwd_walk_min_programs=2)
ran, a_args = [], []
for name in ("_fwd_walk_kernel", "_fwd_kernel"):
    kernel = getattr(triton_fwd, name)

    class Spy:
        def __getitem__(self, grid, name=name, kernel=kernel):
            ran.append(name)
            launch = kernel[grid]

            def call(*a, **k):
                a_args.append(a[4])  # A as the kernel reads it
                return launch(*a, **k)

            return call

    setattr(triton_fwd, name, Spy())
g = torch.Generator().manual_seed(3)
batch, K, dim, L, N, R = 3, 2, 4, 7, 2, 2
u = torch.randn(K, batch, L, dim, generator=g).permute(1, 0, 3, 2)  # token-major, directions outside the batch
w_x = torch.nn.Parameter(torch.randn(K, R + 2 * N, dim, generator=g) * dim ** -0.5)
w_dt = torch.nn.Parameter(torch.randn(K, dim, R, generator=g) * R ** -0.5)
A_store = torch.nn.Parameter(-torch.rand(K, N, dim, generator=g) - 0.5)
A = A_store.transpose(1, 2)  # (K, D, N) with the channels contiguous, as the Vim mixer builds it when it walks
D, bias = torch.nn.Parameter(torch.randn(dim, generator=g)), torch.nn.Parameter(torch.randn(dim, generator=g) * 0.5)
z = torch.randn(batch, dim, L, generator=g)
kw = dict(orders=["natural", "reverse"], combine="mean")
args = (u, w_x, w_dt, A, D, z, bias)
with torch.no_grad():  # parameters that require grad, no backward: the walk
    y = projected_scan(*args, delta_softplus=True, backend="triton", **kw)
walked = list(ran)
ran.clear()
y2 = projected_scan(*args, delta_softplus=True, backend="triton", **kw)  # a backward may follow: the chunks
trained = list(ran)
ud = u.double()
delta, B, C = project(ud, w_x.double(), w_dt.double(), N)
y_ref = selective_scan(ud, delta, A.double(), B, C, D.double(), z.double(), bias.double(), True,
                       backend="reference", **kw)
assert walked == ["_fwd_walk_kernel"], walked
assert trained == ["_fwd_kernel"], trained
# the walk read the caller's A as it is (no transposed copy); the chunk kernel a (K, D, N) contiguous copy
assert a_args[0].data_ptr() == A_store.data_ptr() and a_args[0].stride() == (N * dim, dim, 1), a_args[0].stride()
assert a_args[1].is_contiguous() and torch.equal(a_args[1], A.detach())
for out in (y, y2):
    assert (out.double() - y_ref).abs().max() <= 1e-5 * y_ref.abs().max()
print("ok")
"""


def test_projected_walks_only_without_a_backward():
    """Through `projected_scan` on the Triton path (interpreter): token-major u with the directions outside
    the batch walks under no_grad even though its weights require grad, and takes the chunk kernel when a
    backward may follow; both match the float64 composed form."""
    pytest.importorskip("triton")
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("VSSM_SCAN_FWD", None)
    proc = subprocess.run([sys.executable, "-c", _TRITON_WALK_CHOICE], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_pad_tokens_env_is_checked():
    import os
    import subprocess
    import sys

    env = dict(os.environ, VSSM_PAD_TOKENS="eight")
    proc = subprocess.run([sys.executable, "-c", "import vssm.kernels.layout"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "VSSM_PAD_TOKENS='eight'" in proc.stderr


@pytest.mark.parametrize("value,expect", [("walk", True), ("CHUNK", False), ("", None), ("always", "error")])
def test_scan_fwd_env(value, expect):
    """VSSM_SCAN_FWD sets `Tiles.fwd_walk` (walk: True, chunk: False, unset: None = the op picks); anything
    else stops the import with a message naming the variable."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, VSSM_SCAN_FWD=value)
    code = "from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES; print(DEFAULT_TILES.fwd_walk)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if expect == "error":
        assert proc.returncode != 0 and "VSSM_SCAN_FWD='always'" in proc.stderr
    else:
        assert proc.returncode == 0 and proc.stdout.strip() == str(expect), proc.stderr


@pytest.mark.parametrize("wanted", ["u", "weights", "scan_params", "all"])
def test_projected_padded_rows_partial_gradients(pad8, wanted):
    """Only some inputs requiring gradients (the backward skips the others' matmuls), on padded rows."""
    from vssm.kernels.layout import new_rows

    tensors = _inputs(2, 2, 8, 13, 8, 3, torch.float64, False, False, True, True)
    tensors[0] = new_rows(tensors[0], tuple(tensors[0].shape)).copy_(tensors[0])
    pick = {"u": [0], "weights": [1, 2], "scan_params": [3, 4, 6], "all": list(range(7))}[wanted]
    kw = dict(orders=["natural", "reverse"], combine="mean", backend="reference")

    def grads(fn):
        leaves = [t.detach().requires_grad_(i in pick) for i, t in enumerate(tensors)]
        y = fn(*leaves)
        return torch.autograd.grad(y, [leaves[i] for i in pick], torch.ones_like(y))

    got = grads(lambda *t: projected_scan(*t, delta_softplus=True, **kw))
    want = grads(lambda *t: _composed(*t, **kw))
    for a, b in zip(got, want):
        assert rel_error(a, b) < 1e-11


def test_projected_create_graph_gives_first_order_gradients():
    """create_graph=True returns the ordinary gradients; differentiating them again is refused (the fused
    backward is once-differentiable) instead of silently wrong."""
    tensors = _inputs(2, 2, 8, 13, 8, 3, torch.float64, False, False, True, True)
    kw = dict(orders=["natural", "reverse"], combine="mean", backend="reference")
    leaves = [t.detach().requires_grad_(True) for t in tensors]
    y = projected_scan(*leaves, delta_softplus=True, **kw)
    g = torch.autograd.grad(y.sum(), leaves[:2], create_graph=True)
    leaves_ref = [t.detach().requires_grad_(True) for t in tensors]
    g_ref = torch.autograd.grad(projected_scan(*leaves_ref, delta_softplus=True, **kw).sum(), leaves_ref[:2])
    for a, b in zip(g, g_ref):
        assert torch.equal(a.detach(), b)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad|doesn't require grad"):
        torch.autograd.grad(g[0].sum(), leaves[0])


def test_projected_padded_rows_low_precision_cpu_backend_keeps_layout(pad8):
    """The cpu backend computes float32 gradients; cast to bf16 they stay in the padded layout the fake
    implementation promises (a `.to` copy would be dense)."""
    from vssm.kernels.layout import new_rows
    from vssm.kernels.selective_scan.op import _layout_strides

    tensors = _inputs(2, 2, 8, 13, 8, 3, torch.bfloat16, True, False, True, True)
    tensors[0] = new_rows(tensors[0], tuple(tensors[0].shape)).copy_(tensors[0])
    leaves = [t.detach().requires_grad_(True) if t is not None else None for t in tensors]
    y = projected_scan(*leaves, delta_softplus=True, orders=["natural", "reverse"], combine="mean", backend="cpu")
    du = torch.autograd.grad(y, leaves[0], torch.ones_like(y))[0]
    assert du.dtype == torch.bfloat16 and du.stride() == _layout_strides(leaves[0]) and du.stride(2) == 16


_GATE_INSIDE = """
import json, torch
from vssm.kernels.selective_scan import projected, selective_scan
from vssm.kernels.selective_scan.projected import project, projected_scan
calls = []
gate_forward = projected.gate_forward
projected.gate_forward = lambda *a, **k: calls.append(1) or gate_forward(*a, **k)
g = torch.Generator().manual_seed(11)
res = []
# (K, z shape, u token-major, dtype): Vim's two directions with one gate, one direction with a (batch, 1, D, L) gate
for K, zdims, tokens, dtype in [(2, 3, False, torch.float32), (2, 3, True, torch.float32), (1, 4, False, torch.float32),
                                (2, 3, True, torch.bfloat16)]:
    batch, dim, L, N, R = 2, 16, 21, 8, 3
    u = torch.randn(batch, K, L, dim, generator=g).transpose(2, 3) if tokens else torch.randn(batch, K, dim, L, generator=g)
    w_x = torch.randn(K, R + 2 * N, dim, generator=g) * dim ** -0.5
    w_dt = torch.randn(K, dim, R, generator=g) * R ** -0.5
    A = -torch.rand(dim, N, generator=g) - 0.5
    D, bias = torch.randn(dim, generator=g), torch.randn(dim, generator=g) * 0.5
    z = torch.randn(batch, L, dim, generator=g).transpose(1, 2)
    z = z.unsqueeze(1) if zdims == 4 else z
    kw = dict(orders=["natural", "reverse"][:K], combine="mean", delta_softplus=True)
    delta, B, C = project(u.double(), w_x.double(), w_dt.double(), N)
    ref = selective_scan(u.double(), delta, A.double(), B, C, D.double(), z.double(), bias.double(), backend="reference",
                         **kw)
    cast = [t.to(dtype) for t in (u, w_x, w_dt)]
    row = dict(case=[K, zdims, tokens, str(dtype)])
    for outside in (False, True):
        projected.GATE_OUTSIDE_WITHOUT_GRAD = outside
        n = len(calls)
        with torch.no_grad():
            y = projected_scan(*cast, A, D, z.to(dtype), bias, backend="triton", **kw)
        row["gate_kernel" if outside else "gate_inside"] = len(calls) - n
        row["err_outside" if outside else "err_inside"] = float((y.double() - ref).abs().max() / ref.abs().max())
        row["stride_outside" if outside else "stride_inside"] = list(y.stride())
        row["dtype"] = str(y.dtype)
    res.append(row)
print(json.dumps(res))
"""


def test_projected_gate_inside_the_kernels_without_a_backward():
    """Without a backward, `projected_scan` hands a gate shared by the directions to the scan's forward kernels
    (no gate pass): the output equals the float64 composed form as the gate-outside path's does, in the same
    layout and dtype (interpreter; two directions or one, z (batch, D, L) or (batch, 1, D, L), fp32 and bf16)."""
    rows = run_code(_GATE_INSIDE, 600)
    assert len(rows) == 4
    for r in rows:
        tol = 2e-2 if "bfloat16" in r["case"][3] else 1e-5
        assert r["gate_inside"] == 0 and r["gate_kernel"] == 1, r
        assert r["err_inside"] <= tol and r["err_outside"] <= tol, r
        assert r["stride_inside"] == r["stride_outside"], r
        assert r["dtype"] == r["case"][3], r


_THIN_AND_SPLIT = r"""
import json, torch
from vssm.kernels import layout
from vssm.kernels.selective_scan import projected, triton_fwd, triton_thin
from vssm.kernels.selective_scan import selective_scan
from vssm.kernels.selective_scan.op import prepare
from vssm.kernels.selective_scan.projected import project, projected_scan
import dataclasses
assert torch.__dict__ is not None
res = {"thin": [], "projected": [], "split": []}
g = torch.Generator().manual_seed(0)
# the thin matmul over a grid, x a row slice of a wider matrix, out in both layouts
for dtype in (torch.bfloat16, torch.float16):
    for K, M, R, N in ((1, 1, 1, 1), (2, 5, 3, 3), (3, 40, 12, 129), (2, 37, 17, 70), (1, 33, 64, 65)):
        w = (torch.randn(K, M, R, generator=g) * R ** -0.5).to(dtype)
        x = torch.randn(K, R + 9, N, generator=g).to(dtype)[:, 4:4 + R]
        ref = torch.bmm(w.double(), x.double())
        # one rounding of the float32 sum of exact products (the interpreter truncates to bfloat16: one whole ulp)
        ulp = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -11
        for tm in (False, True):
            out = torch.empty(K, N, M, dtype=dtype).transpose(1, 2) if tm else torch.empty(K, M, N, dtype=dtype)
            triton_thin.thin_bmm(w, x, out, block_m=16, block_n=32)
            ok = bool((((out.double() - ref).abs()) <= ref.abs() * ulp + 1e-5).all())
            res["thin"].append([str(dtype), K, M, R, N, tm, ok])
errors = []
w, x = torch.randn(2, 8, 12).bfloat16(), torch.randn(2, 12, 9).bfloat16()
for bad in (lambda: triton_thin.thin_bmm(torch.randn(2, 8, 65).bfloat16(), torch.randn(2, 65, 9).bfloat16(),
                                         torch.empty(2, 8, 9).bfloat16()),
            lambda: triton_thin.thin_bmm(w.float(), x.float(), torch.empty(2, 8, 9)),
            lambda: triton_thin.thin_bmm(w, x, torch.empty(2, 8, 9)),
            lambda: triton_thin.thin_bmm(w, x[:, :11], torch.empty(2, 8, 9).bfloat16())):
    try:
        bad()
        errors.append(None)
    except ValueError as e:
        errors.append(str(e).split(":")[0])
res["errors"] = errors
# projected_scan through it: dt rank 12 in bfloat16 (24-byte rows) runs the kernel, 8 (16 bytes) cuBLAS-style bmm
launches = []
real = triton_thin._thin_bmm
class Spy:
    def __getitem__(self, grid):
        def go(*a, **k):
            launches.append(grid)
            return real[grid](*a, **k)
        return go
triton_thin._thin_bmm = Spy()
for R, dtype in ((12, torch.bfloat16), (8, torch.bfloat16), (12, torch.float32)):
    batch, K, dim, L, N = 2, 2, 16, 21, 8
    # as the conv op stores it: each direction's tokens over the batch one matrix (the kernel's operand)
    u = layout.new_rows(u0 := torch.randn(batch, K, dim, L, generator=g), tuple(u0.shape), batch_inner=True).copy_(u0)
    w_x = torch.randn(K, R + 2 * N, dim, generator=g) * dim ** -0.5
    w_dt = torch.randn(K, dim, R, generator=g) * R ** -0.5
    A = -torch.rand(dim, N, generator=g) - 0.5
    D, bias = torch.randn(dim, generator=g), torch.randn(dim, generator=g) * 0.5
    z = torch.randn(batch, dim, L, generator=g)
    kw = dict(orders=["natural", "reverse"], combine="mean", delta_softplus=True)
    cast = [(layout.new_rows(u, tuple(u.shape), dtype, batch_inner=True).copy_(u) if t is u else t.to(dtype))
            .requires_grad_(True) for t in (u, w_x, w_dt)]
    grad = R == 12 and dtype == torch.bfloat16  # the kernel's case: the backward's recomputed delta too
    n = len(launches)
    y = projected_scan(*cast, A, D, z.to(dtype), bias, backend="triton", **kw)
    leaves = [t.detach().double().requires_grad_(True) for t in cast]
    delta, B, C = project(*leaves, N)
    ref = selective_scan(leaves[0], delta, A.double(), B, C, D.double(), z.to(dtype).double(), bias.double(),
                         backend="reference", **kw)
    errs = [float((y.double() - ref).abs().max() / ref.abs().max())]
    if grad:
        grads = torch.autograd.grad(y.float().pow(2).sum(), cast)
        rgrads = torch.autograd.grad(ref.pow(2).sum(), leaves)
        errs += [float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(grads, rgrads)]
    err = max(errs)
    res["projected"].append([R, str(dtype), len(launches) - n, err])
# split outputs: each direction's, stored (batch, L, K, D); their sum is the summed forward's output
for walk, dtype, K in ((False, torch.float32, 2), (True, torch.bfloat16, 2), (False, torch.float32, 1)):
    batch, dim, L, N = 2, 16, 21, 16
    u = torch.randn(batch, K, dim, L, generator=g).to(dtype)
    dl = (torch.randn(batch, K, dim, L, generator=g) * 0.5).to(dtype)
    A = -torch.rand(K, dim, N, generator=g) - 0.5
    B = torch.randn(batch, K, 1, N, L, generator=g).to(dtype)
    C = torch.randn(batch, K, 1, N, L, generator=g).to(dtype)
    Dp, bias = torch.randn(K, dim, generator=g), torch.randn(K, dim, generator=g) * 0.3
    z = torch.randn(batch, dim, L, generator=g).to(dtype)
    orders = ["natural", "reverse", "natural", "reverse"][:K]
    args = prepare(u, dl, A, B, C, Dp, z, bias, True, orders, None, "mean", "triton", grad=False)
    # the summed forward with a program per direction too (as split runs); no time segments (interpreter time)
    tiles = dataclasses.replace(triton_fwd.DEFAULT_TILES, fwd_walk=walk, fwd_loop_min_programs=1 << 30,
                                fwd_walk_loop_min_programs=1 << 30, fwd_min_programs=1)
    whole = triton_fwd.triton_forward(*args[:11], backward=False, tiles=tiles)[0]
    parts = triton_fwd.triton_forward(*args[:11], backward=False, split=True, tiles=tiles)[0]
    exact = bool(torch.equal(parts.float().sum(1).to(dtype), whole))
    res["split"].append([walk, str(dtype), K, list(parts.shape), parts.permute(0, 3, 1, 2).is_contiguous(), exact])
print(json.dumps(res))
"""


def test_thin_matmul_and_split_directions_interpreter():
    """Interpreter: `triton_thin.thin_bmm` against float64 products over a grid (K, M, R, N incl. 1, odd sizes, R up to
    64; bfloat16 / float16; out channel-major and token-major; x a row slice), within one rounding of the output
    dtype; its argument errors; `projected_scan` runs it for dt rank 12 in bfloat16 (forward, and the backward's
    recomputed delta; forward and every gradient against float64) and not for 8 (aligned rows) or float32;
    `triton_forward(split=True)`: each direction's output stored (batch, L, K, D) whose sum is the summed forward's
    output bit for bit (two directions, the chunk and the walking kernels; and K = 1)."""
    res = run_code(_THIN_AND_SPLIT, 900)
    assert len(res["thin"]) == 20 and all(r[-1] for r in res["thin"]), res["thin"]
    assert res["errors"] == ["thin_bmm"] * 4, res["errors"]
    launched = {(r[0], r[1]): r[2] for r in res["projected"]}
    # rank 12 in bfloat16: the forward's delta and the backward's recomputed one; the others: their forward
    assert launched == {(12, "torch.bfloat16"): 2, (8, "torch.bfloat16"): 0, (12, "torch.float32"): 0}, launched
    for r in res["projected"]:
        assert r[3] <= (3e-2 if "bfloat16" in r[1] else 1e-4), r
    assert len(res["split"]) == 3
    for walk, dtype, K, shape, stored, exact in res["split"]:
        assert shape == [2, K, 16, 21] and stored, (walk, dtype, K)
        assert exact, (walk, dtype, K)


def test_projected_scan_directions_refuses_outside_inference_and_triton():
    from vssm.kernels.selective_scan.projected import projected_scan_directions

    g = torch.Generator().manual_seed(0)
    u = torch.randn(1, 2, 8, 5, generator=g)
    args = (u, torch.randn(2, 12, 8, generator=g), torch.randn(2, 8, 2, generator=g), -torch.rand(8, 5, generator=g))
    with torch.no_grad(), pytest.raises(ValueError, match="runs the Triton kernels only"):
        projected_scan_directions(*args, delta_softplus=True)
    with pytest.raises(ValueError, match="inference only"):
        projected_scan_directions(u.requires_grad_(True), *args[1:])


_CONV_PROJECT = r"""
import json, os, torch
os.environ["VSSM_SCAN_BACKEND"] = "triton"  # the Triton backend on CPU tensors (under the interpreter)
import vssm.mamba as vm
from vssm.mamba import Mamba
from vssm.kernels.conv1d.op import depthwise_conv1d_reference, new_conv_out
from vssm.kernels.selective_scan import triton_conv_proj as cp
from vssm.kernels.selective_scan.op import new_like_layout
from vssm.kernels.selective_scan.projected import conv_scan_directions, projected_scan_directions
from vssm.kernels.conv1d import depthwise_conv1d
g = torch.Generator().manual_seed(0)
res = {"kernel": [], "scan": [], "mamba": [], "errors": []}
def err(a, ref):
    return float((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
# the kernel over a grid: directions, taps, bias, dtypes, layouts, odd and single token counts, dt ranks and
# state sizes up to the limit; x a column slice of a wider token-major matrix
cases = [(2, 21, 40, 2, 4, 12, 8, True, torch.bfloat16, True), (1, 1, 16, 1, 3, 5, 16, False, torch.float32, False),
         (3, 70, 20, 2, 2, 20, 3, True, torch.float16, False), (2, 33, 24, 2, 4, 64, 32, False, torch.float32, True),
         (1, 17, 48, 1, 4, 1, 1, True, torch.bfloat16, False)]
for batch, L, C, K, W, R, N, bias, dtype, cm in cases:
    x = torch.randn(batch, L, 3 * C, generator=g).to(dtype)[:, :, C:2 * C]
    taps = torch.randn(K, C, W, generator=g) * 0.5
    b = torch.randn(K, C, generator=g) if bias else None
    offs = [-(W - 1), 0][:K]
    wx = (torch.randn(K, R + 2 * N, C, generator=g) * C ** -0.5).to(dtype)
    wdt = (torch.randn(K, C, R, generator=g) * R ** -0.5).to(dtype)
    u = new_conv_out(x, K, cm).transpose(2, 3)
    xd = new_like_layout(u, (batch, K, R + 2 * N, L), dtype)
    de = new_like_layout(u, (batch, K, C, L), dtype)
    cp.conv_project(x, taps, b, offs, wx, wdt, u, xd, de, tiles=(16, 16, 4, 1))
    uref = depthwise_conv1d_reference(x.double(), taps.double(), None if b is None else b.double(), offs,
                                      True).transpose(2, 3)
    # the projections of the stored (rounded) values, as the separate matmuls take them
    xref = torch.matmul(wx.double(), u.double())
    dref = torch.matmul(wdt.double(), xd[:, :, :R].double())
    res["kernel"].append([str(dtype), cm, K, L, err(u, uref), err(xd, xref), err(de, dref)])
# the op against the conv op followed by projected_scan_directions (the path it replaces), both layouts
for cm, dtype in ((True, torch.float32), (False, torch.bfloat16)):
    batch, L, C, K, R, N = 2, 19, 16, 2, 12, 8
    x = torch.randn(batch, L, 2 * C, generator=g).to(dtype)[:, :, :C]
    taps, b = torch.randn(K, C, 4, generator=g) * 0.5, torch.randn(K, C, generator=g)
    wx = (torch.randn(K, R + 2 * N, C, generator=g) * C ** -0.5).to(dtype)
    wdt = (torch.randn(K, C, R, generator=g) * R ** -0.5).to(dtype)
    A = -torch.rand(K, C, N, generator=g) - 0.5
    D, db = torch.randn(K, C, generator=g), torch.randn(K, C, generator=g) * 0.3
    z = torch.randn(batch, C, L, generator=g).to(dtype)
    kw = dict(delta_softplus=True, orders=["natural", "reverse"], combine="mean")
    with torch.no_grad():
        got = conv_scan_directions(x, taps, b, [-3, 0], wx, wdt, A, D, z, db, channel_major=cm, **kw)
        u = depthwise_conv1d(x, taps, b, [-3, 0], silu=True, channel_major=cm).transpose(2, 3)
        want = projected_scan_directions(u, wx, wdt, A, D, z, db, **kw)
    res["scan"].append([cm, str(dtype), list(got.shape), list(got.stride()) == list(want.stride()), err(got, want.double())])
# Mamba(x, residual) at inference on the kernels' path (has_fast_kernel stands in for CUDA): with the fused kernel,
# without it, and the composed form
vm.has_fast_kernel = lambda t: isinstance(t, torch.Tensor)
launches = []
real = cp._conv_proj_fwd
class Spy:
    def __getitem__(self, grid):
        def go(*a, **k):
            launches.append(grid)
            return real[grid](*a, **k)
        return go
cp._conv_proj_fwd = Spy()
for dtype, d_conv, conv_bias in ((torch.float32, 4, True), (torch.bfloat16, 2, False)):
    torch.manual_seed(0)
    m = Mamba(16, d_state=8, d_conv=d_conv, conv_bias=conv_bias, bidirectional=True).to(dtype)
    x = torch.randn(2, 13, 16).to(dtype)
    r = torch.randn(2, 13, 16)
    with torch.no_grad():
        n = len(launches)
        fused = m(x, residual=r)
        k_fused = len(launches) - n
        vm.FUSED_CONV_PROJECT = False
        apart = m(x, residual=r)
        k_apart = len(launches) - n - k_fused
        vm.FUSED_CONV_PROJECT = True
        m.composed = True
        comp = m(x, residual=r)
        m.composed = False
    res["mamba"].append([str(dtype), k_fused, k_apart, err(fused, apart.double()), err(fused, comp.double())])
# training: conv_projected_scan (one node: the kernel, the scan; backward the projected scan's and the conv op's)
# against the conv op followed by projected_scan, output and every gradient, and the Mamba mixer's training step
from vssm.kernels.selective_scan.projected import conv_projected_scan, projected_scan
res["train"] = []
for K, bias, dtype, cm in ((2, True, torch.float32, True), (1, False, torch.float32, False), (2, True, torch.bfloat16, True)):
    batch, L, C, R, N = 2, 11, 16, 5, 4
    x0 = torch.randn(batch, L, 2 * C, generator=g).to(dtype)
    taps = torch.randn(K, C, 3, generator=g) * 0.5
    b = torch.randn(K, C, generator=g) if bias else None
    wx = (torch.randn(K, R + 2 * N, C, generator=g) * C ** -0.5).to(dtype)
    wdt = (torch.randn(K, C, R, generator=g) * R ** -0.5).to(dtype)
    A = -torch.rand(K, C, N, generator=g) - 0.5
    D, db = torch.randn(K, C, generator=g), torch.randn(K, C, generator=g) * 0.3
    z0 = torch.randn(batch, L, C, generator=g).to(dtype)
    offs = [-2, 0][:K]
    kw = dict(delta_softplus=True, orders=["natural", "reverse"][:K], combine="mean")
    leaves = [t.clone().requires_grad_(True) if t is not None else None for t in (x0, taps, b, wx, wdt, A, D, z0, db)]
    def run(fused, ls):
        xx, tt, bb, wxx, wdd, AA, DD, zz, dbb = ls
        x, z = xx[:, :, :C], zz.transpose(1, 2)
        if fused:
            return conv_projected_scan(x, tt, bb, offs, wxx, wdd, AA, DD, z, dbb, channel_major=cm, **kw)
        u = depthwise_conv1d(x, tt, bb, offs, silu=True, channel_major=cm).transpose(2, 3)
        return projected_scan(u, wxx, wdd, AA, DD, z, dbb, **kw)
    y = run(True, leaves)
    dy = torch.randn(y.shape, generator=g).to(y.dtype)
    gs = torch.autograd.grad(y, [t for t in leaves if t is not None], dy)
    ref_leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in leaves]
    yr = run(False, ref_leaves)
    gr = torch.autograd.grad(yr, [t for t in ref_leaves if t is not None], dy)
    res["train"].append([K, bias, str(dtype), cm, err(y, yr.double()), [err(a, r_.double()) for a, r_ in zip(gs, gr)]])
n = len(launches)
for bidirectional in (True, False):
    torch.manual_seed(0)
    m = Mamba(16, d_state=4, bidirectional=bidirectional)
    x = torch.randn(2, 9, 16, requires_grad=True)
    out = {}
    for name, fused, composed in (("fused", True, False), ("apart", False, False), ("composed", False, True)):
        vm.FUSED_CONV_PROJECT, m.composed = fused, composed
        y = m(x)
        grads = torch.autograd.grad(y.pow(2).sum(), [x, *m.parameters()])
        out[name] = (y, grads)
    vm.FUSED_CONV_PROJECT, m.composed = True, False
    e = lambda a, b_: [err(out[a][0], out[b_][0].double())] + [err(p, q.double()) for p, q in zip(out[a][1], out[b_][1])]
    res["train"].append(["mamba", bidirectional, e("fused", "apart"), e("fused", "composed")])
res["train_launches"] = len(launches) - n
# under torch.compile (dynamo: not plain eager mode) the mixer takes the ops' path, not the conv-projection kernel's
# Python functions (which refused to run there): inference with the residual and a training step, against eager
res["compile"] = []
for grad in (False, True):
    torch.manual_seed(0)
    m = Mamba(16, d_state=4, bidirectional=True)
    x = torch.randn(2, 9, 16, requires_grad=grad)
    r = None if grad else torch.randn(2, 9, 16)
    compiled = torch.compile(m, backend="eager")
    with torch.set_grad_enabled(grad):
        n0 = len(launches)
        y = compiled(x, residual=r)
        n1 = len(launches)
        ref = m(x, residual=r)
        n2 = len(launches)
    row = [grad, n1 - n0, n2 - n1, err(y, ref.double())]
    if grad:
        gy = torch.autograd.grad(y.pow(2).sum(), [x, *m.parameters()])
        gr = torch.autograd.grad(ref.pow(2).sum(), [x, *m.parameters()])
        row.append(max(err(a, b.double()) for a, b in zip(gy, gr)))
    res["compile"].append(row)
torch._dynamo.reset()
# bad arguments: each refused with the argument named
x = torch.randn(1, 5, 8)
ok = (torch.randn(2, 8, 4), None, [-3, 0], torch.randn(2, 12, 8), torch.randn(2, 8, 4), -torch.rand(8, 4))
bad = {"x": (x[0],) + ok, "taps": (x, torch.randn(2, 7, 4)) + ok[1:], "offsets": (x, ok[0], None, [0]) + ok[3:],
       "conv_bias": (x, ok[0], torch.randn(8)) + ok[2:],
       "x_proj_weight": (x,) + ok[:3] + (torch.randn(2, 11, 8),) + ok[4:],
       "dt_proj_weight": (x,) + ok[:4] + (torch.randn(2, 8, 4).bfloat16(),) + ok[5:]}
for name, args in bad.items():
    try:
        with torch.no_grad():
            conv_scan_directions(*args)
        res["errors"].append([name, None])
    except ValueError as e:
        res["errors"].append([name, str(e)])
try:
    conv_scan_directions(x.requires_grad_(True), *ok)
    res["errors"].append(["grad", None])
except ValueError as e:
    res["errors"].append(["grad", str(e)])
print(json.dumps(res))
"""


def test_conv_project_kernel_and_fused_inference_path():
    """Interpreter: `triton_conv_proj.conv_project` (the conv, x_proj and dt_proj in one kernel) against float64 over
    a grid (one or two directions, 2-4 taps, with and without bias, bfloat16 / float16 / float32, u channel-major and
    token-major, L = 1 and odd, dt rank and 2N up to 64, x a column slice): u within one rounding of the conv, x_dbl
    and delta within one rounding of the products of the stored values; `conv_scan_directions` equal to the conv op
    followed by `projected_scan_directions` (values and layout); `Mamba(x, residual)` at inference launching the
    kernel once per call and equal to the unfused and the composed forms; `conv_projected_scan` (training: one node,
    the projected scan's backward then the conv op's) against the conv op followed by `projected_scan`, output and
    every gradient (one or two directions, with and without bias, both layouts, float32 / bfloat16), and the mixer's
    training step through it against the unfused and composed forms; under torch.compile the mixer on the ops' path
    (the kernel not launched), equal to eager, output and gradients; bad arguments refused by name."""
    res = run_code(_CONV_PROJECT, 900)
    assert len(res["kernel"]) == 5
    for dtype, cm, K, L, eu, ex, ed in res["kernel"]:
        tol = {"torch.bfloat16": 8e-3, "torch.float16": 1e-3, "torch.float32": 1e-5}[dtype]
        assert max(eu, ex, ed) <= tol, (dtype, cm, K, L, eu, ex, ed)
    assert len(res["scan"]) == 2
    for cm, dtype, shape, same_layout, e in res["scan"]:
        assert shape == [2, 2, 16, 19] and same_layout, (cm, dtype)
        assert e <= (2e-2 if "bfloat16" in dtype else 1e-5), (cm, dtype, e)
    for dtype, k_fused, k_apart, e_apart, e_comp in res["mamba"]:
        assert k_fused == 1 and k_apart == 0, (dtype, k_fused, k_apart)
        tol = 3e-2 if "bfloat16" in dtype else 1e-5
        assert e_apart <= tol and e_comp <= tol, (dtype, e_apart, e_comp)
    for row in res["train"]:
        if row[0] == "mamba":
            _, bidirectional, e_apart, e_comp = row
            assert max(e_apart) <= 1e-5 and max(e_comp) <= 1e-5, row
        else:
            K, bias, dtype, cm, e_out, e_grads = row
            # bfloat16: both forms round u, x_dbl and the output (the interpreter truncates: a whole ulp each)
            tol = 4e-2 if "bfloat16" in dtype else 1e-5
            assert len(e_grads) == (9 if bias else 8) and e_out <= tol and max(e_grads) <= tol, row
    assert res["train_launches"] == 2  # the fused mixer's training step, once per direction count
    assert [r[0] for r in res["compile"]] == [False, True]
    for row in res["compile"]:
        grad, k_compiled, k_eager, e = row[:4]
        assert k_compiled == 0 and k_eager == 1, row  # the kernel in eager mode only
        assert e <= 1e-5 and (not grad or row[4] <= 1e-5), row
    errors = dict(res["errors"])
    assert set(errors) == {"x", "taps", "offsets", "conv_bias", "x_proj_weight", "dt_proj_weight", "grad"}
    for name, msg in errors.items():
        assert msg is not None and msg.startswith("conv_scan_directions:"), (name, msg)
        if name != "grad":
            assert f"`{name}`" in msg or name in msg, (name, msg)
    assert "inference only" in errors["grad"]
