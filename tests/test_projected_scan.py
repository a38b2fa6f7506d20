"""`projected_scan` (x_proj / dt_proj inside the op, delta recomputed in the backward) against its composed
form (torch matmuls + `selective_scan`), outputs and every gradient, and what its autograd keeps."""

from __future__ import annotations

import pytest
import torch

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
    """The eager path saves u, x_dbl and the weights; the composed one also keeps delta (batch, K, D, L)."""
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
    assert fused <= composed - delta_bytes


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
