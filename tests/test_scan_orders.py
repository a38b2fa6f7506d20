"""Multi-direction selective scans (`orders=`) on the CPU reference backend.

Two oracles, both in float64:
- `selective_scan_naive` with the same `orders` (the step loop over each visiting order);
- the COMPOSED scan: the single-direction op called once per direction on explicit copies of its
  inputs in visiting order (flip, an H x W transpose, index_select), each output mapped back to
  natural order the same way and the K of them summed (or averaged). This is what a model did before
  the op took orders, and it shares no order code with the op (the permutations are written out here).
Outputs, last states and the gradients of every input are compared.
"""

from __future__ import annotations

import pytest
import torch

from vssm.kernels.selective_scan import (
    ORDERS,
    order_index,
    register_order,
    selective_scan,
    selective_scan_naive,
)
from vssm.kernels.selective_scan.cases import make_inputs, rel_error

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
PER_DIR_DIMS = dict(u=4, delta=4, z=4, B=5, C=5, A=3, D=2, delta_bias=2)
LEAD = dict(u=1, delta=1, z=1, B=1, C=1, A=0, D=0, delta_bias=0)
TOKENS = ("u", "delta", "z", "B", "C")  # tensors with a token axis (last)
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
NG = [(1, 1), (16, 1), (1, 4), (16, 4), (64, 1)]
VMAMBA = ["rows", "cols", "rows_reverse", "cols_reverse"]
SNAKE = ["snake_rows", "snake_cols", "snake_rows_reverse", "snake_cols_reverse"]
# name -> (orders, shared inputs); "perm" stands for a fixed random permutation of the tokens
ORDER_SETS = {
    "vim": (["natural", "reverse"], ("z",)),
    "vmamba": (VMAMBA, ("u",)),
    "snake": (SNAKE, ("u", "A", "D")),
    "mixed": (["perm", "cols_reverse", "snake_cols"], ("delta_bias", "C")),
    "natural_only": (["natural", "rows"], ("B",)),  # no order table at all
}


# ----------------------------------------------------------------------------------------------
# the composed oracle: explicit copies in visiting order, one single-direction scan per direction


def _snake_rows(H, W):
    return torch.tensor([r * W + (c if r % 2 == 0 else W - 1 - c) for r in range(H) for c in range(W)])


def _snake_cols(H, W):
    return torch.tensor([(r if c % 2 == 0 else H - 1 - r) * W + c for c in range(W) for r in range(H)])


def _to_order(t, o, grid):
    """(..., L) in natural token order -> (..., L) in the visiting order o (a copy)."""
    if isinstance(o, torch.Tensor):
        return t.index_select(-1, o)
    if o in ("natural", "rows"):
        return t.clone()
    if o in ("reverse", "rows_reverse"):
        return t.flip(-1)
    H, W = grid
    if o == "cols":
        return t.unflatten(-1, (H, W)).transpose(-1, -2).flatten(-2)
    if o == "cols_reverse":
        return _to_order(t, "cols", grid).flip(-1)
    snake = {"snake_rows": _snake_rows(H, W), "snake_cols": _snake_cols(H, W)}
    if o in snake:
        return t.index_select(-1, snake[o])
    return t.index_select(-1, snake[o.removesuffix("_reverse")].flip(0))


def _from_order(y, o, grid):
    """Inverse of `_to_order`: (..., L) in visiting order -> natural token order."""
    if isinstance(o, torch.Tensor):
        return torch.zeros_like(y).index_copy(-1, o, y)
    if o in ("natural", "rows"):
        return y
    if o in ("reverse", "rows_reverse"):
        return y.flip(-1)
    H, W = grid
    if o == "cols":
        return y.unflatten(-1, (W, H)).transpose(-1, -2).flatten(-2)
    if o == "cols_reverse":
        return _from_order(y.flip(-1), "cols", grid)
    idx = _to_order(torch.arange(H * W), o, grid)  # a snake: the permutation itself
    return torch.zeros_like(y).index_copy(-1, idx, y)


def composed(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
             *, orders, grid=None, combine="sum"):
    """The multi-direction scan as K single-direction `selective_scan` calls on reordered copies."""
    args = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    out, lasts = 0, []
    for k, o in enumerate(orders):
        kw = {}
        for n, t in args.items():
            if t is not None and t.dim() == PER_DIR_DIMS[n]:
                t = t.select(LEAD[n], k)
            if t is not None and n in TOKENS:
                t = _to_order(t, o, grid)
            kw[n] = t
        y, last = selective_scan(**kw, delta_softplus=delta_softplus, return_last_state=True, backend="reference")
        out = out + _from_order(y, o, grid)
        lasts.append(last)
    if combine == "mean":
        out = out / len(orders)
    last = torch.stack(lasts, dim=1)
    return (out, last) if return_last_state else out


# ----------------------------------------------------------------------------------------------
# helpers


def _inputs(batch, dim, L, N, G, orders, *, shared=(), dtype=torch.float32, z=True, D=True, bias=True,
            softplus=True, token_major=False, seed=0):
    inp = make_inputs(batch, dim, L, N, G, K=len(orders), shared=shared, dtype=dtype, z=z, D=D, delta_bias=bias,
                      token_major=token_major, seed=seed)
    if dtype == torch.float64:
        inp = {n: (None if t is None else t.double()) for n, t in inp.items()}
    if not softplus:  # delta (+ bias) is the step size itself: small and positive
        inp["delta"] = 0.1 * inp["delta"].abs()
        if inp["delta_bias"] is not None:
            inp["delta_bias"] = 0.01 * inp["delta_bias"].abs()
    perm = torch.randperm(L, generator=torch.Generator().manual_seed(seed + 1))
    orders = [perm if o == "perm" else o for o in orders]
    return inp, orders


def _leaves(inp, dtype=None):
    return {n: (None if t is None else (t.detach() if dtype is None else t.detach().to(dtype)).requires_grad_(True))
            for n, t in inp.items()}


def _run(fn, leaves, dout, dlast, **kw):
    """out, last and the gradients of every present input for the loss <out, dout> + <last, dlast>."""
    out, last = fn(**leaves, return_last_state=True, **kw)
    wrt = [n for n in NAMES if leaves[n] is not None]
    grads = torch.autograd.grad((out, last), [leaves[n] for n in wrt], (dout.to(out.dtype), dlast.to(last.dtype)))
    return out, last, dict(zip(wrt, grads))


def _compare(got, want, tol, label):
    out, last, grads = got
    out_w, last_w, grads_w = want
    assert out.shape == out_w.shape and last.shape == last_w.shape, label
    errs = {"out": rel_error(out, out_w), "last": rel_error(last, last_w)}
    assert grads.keys() == grads_w.keys(), label
    for n in grads:
        assert grads[n].shape == grads_w[n].shape, f"{label}: d{n} shape"
        errs["d" + n] = rel_error(grads[n], grads_w[n])
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"{label}: errors over {tol:g}: {bad}"


def _check(orders, grid, N, G, *, L=None, batch=2, dim=4, shared=(), dtype=torch.float32, softplus=True,
           combine="sum", composed_too=True, **opts):
    L = grid[0] * grid[1] if L is None else L
    inp, orders = _inputs(batch, dim, L, N, G, orders, shared=shared, dtype=dtype, softplus=softplus, **opts)
    K = len(orders)
    g = torch.Generator().manual_seed(99)
    dout = torch.randn(batch, dim, L, generator=g, dtype=torch.float64)
    dlast = torch.randn(batch, K, dim, N, generator=g, dtype=torch.float64)
    kw = dict(orders=orders, grid=grid, combine=combine, delta_softplus=softplus)
    got = _run(selective_scan, _leaves(inp), dout, dlast, backend="reference", **kw)
    assert got[0].dtype == dtype and got[1].dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert tuple(got[1].shape) == (batch, K, dim, N)
    naive = _run(selective_scan_naive, _leaves(inp, torch.float64), dout, dlast, **kw)
    _compare(got, naive, TOL[dtype], f"op vs naive {orders}")
    if composed_too:
        comp = _run(composed, _leaves(inp, torch.float64), dout, dlast, **kw)
        _compare(got, comp, TOL[dtype], f"op vs composed {orders}")
        _compare(comp, naive, 1e-10, f"composed vs naive {orders}")  # the two oracles agree
    return got


# ----------------------------------------------------------------------------------------------
# against the oracles


@pytest.mark.parametrize("grid", [(3, 5), (5, 3)], ids=lambda g: f"{g[0]}x{g[1]}")
@pytest.mark.parametrize("N,G", NG, ids=[f"N{n}G{g}" for n, g in NG])
@pytest.mark.parametrize("order_set", list(ORDER_SETS))
def test_orders_match_naive_and_composed(order_set, N, G, grid):
    orders, shared = ORDER_SETS[order_set]
    _check(orders, grid, N, G, shared=shared, seed=N + G + grid[0])


OPTIONS = {
    "all": dict(),
    "none": dict(z=False, D=False, bias=False),
    "z_only": dict(D=False, bias=False),
    "D_bias_no_softplus": dict(z=False, softplus=False),
}


@pytest.mark.parametrize("token_major", [False, True], ids=["channel_major", "token_major"])
@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("N,G", NG, ids=[f"N{n}G{g}" for n, g in NG])
def test_options_and_layouts(N, G, options, token_major):
    # the VMamba orders on an odd grid; everything per direction except u
    out = _check(VMAMBA, (5, 3), N, G, shared=("u",), token_major=token_major, seed=3 * N + G,
                 **OPTIONS[options])[0]
    # token-major in -> token-major out (as a Linear's (batch, L, D) output)
    assert (out.stride(1) == 1) == token_major


@pytest.mark.parametrize("N,G", NG, ids=[f"N{n}G{g}" for n, g in NG])
@pytest.mark.parametrize("order_set", list(ORDER_SETS))
def test_single_token(order_set, N, G):
    orders, shared = ORDER_SETS[order_set]
    _check(orders, (1, 1), N, G, shared=shared, seed=5)


@pytest.mark.parametrize("order_set", list(ORDER_SETS))
def test_float64_and_mean(order_set):
    orders, shared = ORDER_SETS[order_set]
    _check(orders, (3, 5), 16, 4, dtype=torch.float64, combine="mean", shared=shared, seed=11)


def test_everything_shared_and_3d_bc():
    # every input in its single-direction shape (B, C even 3-D): K scans of the same data in K orders
    _check(VMAMBA, (3, 5), 2, 1, shared=NAMES, seed=2)
    inp, orders = _inputs(1, 4, 15, 2, 1, VMAMBA, shared=NAMES, seed=2)
    inp["B"], inp["C"] = inp["B"][:, 0], inp["C"][:, 0]
    out = selective_scan(**inp, delta_softplus=True, orders=orders, grid=(3, 5), backend="reference")
    ref = selective_scan_naive(**{n: None if t is None else t.double() for n, t in inp.items()},
                               delta_softplus=True, orders=orders, grid=(3, 5))
    assert rel_error(out, ref) < 1e-5


def test_mean_is_sum_over_K():
    inp, orders = _inputs(2, 4, 15, 4, 2, VMAMBA, seed=4)
    s = selective_scan(**inp, orders=orders, grid=(3, 5), delta_softplus=True, backend="reference")
    m = selective_scan(**inp, orders=orders, grid=(3, 5), delta_softplus=True, combine="mean", backend="reference")
    torch.testing.assert_close(m, s / 4)


def test_one_natural_order_is_the_single_direction_op():
    inp = make_inputs(2, 4, 13, 3, 1, seed=6)
    single, last1 = selective_scan(**inp, delta_softplus=True, return_last_state=True, backend="reference")
    multi, lastk = selective_scan(**inp, delta_softplus=True, return_last_state=True, orders=["natural"],
                                  backend="reference")
    torch.testing.assert_close(multi, single)
    assert last1.shape == (2, 4, 3) and lastk.shape == (2, 1, 4, 3)
    torch.testing.assert_close(lastk[:, 0], last1)


def test_return_last_state_shapes():
    inp, orders = _inputs(3, 8, 15, 5, 2, VMAMBA, shared=("u", "z"), seed=8)
    out = selective_scan(**inp, orders=orders, grid=(3, 5), delta_softplus=True, backend="reference")
    assert isinstance(out, torch.Tensor) and out.shape == (3, 8, 15)
    kw = dict(orders=orders, grid=(3, 5), delta_softplus=True)
    out, last = selective_scan(**inp, **kw, return_last_state=True, backend="reference")
    assert out.shape == (3, 8, 15) and out.dtype == torch.float32
    assert last.shape == (3, 4, 8, 5) and last.dtype == torch.float32
    # the last state of direction k is the state after its last visited token
    naive_last = selective_scan_naive(**inp, **kw, return_last_state=True)[1]
    assert rel_error(last, naive_last) < 1e-5
    inp16 = {n: (t.to(torch.bfloat16) if n in TOKENS and t is not None else t) for n, t in inp.items()}
    out, last = selective_scan(**inp16, **kw, return_last_state=True, backend="reference")
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32


@pytest.mark.parametrize("token_major", [False, True])
def test_out_layout_follows_u(token_major):
    inp, orders = _inputs(2, 8, 15, 2, 1, ["natural", "cols"], shared=("u", "z"), token_major=token_major)
    out = selective_scan(**inp, orders=orders, grid=(3, 5), delta_softplus=True, backend="reference")
    if token_major:
        assert inp["u"].stride(1) == 1 and out.stride(1) == 1 and out.stride(2) == 8
    else:
        assert out.is_contiguous()


def test_gradcheck_multi_direction():
    inp, orders = _inputs(1, 2, 6, 2, 1, ["perm", "cols_reverse", "snake_rows"], shared=("u", "D"),
                          dtype=torch.float64, seed=1)
    names = [n for n in NAMES if inp[n] is not None]
    leaves = [inp[n].detach().clone().requires_grad_(True) for n in names]

    def f(*ts):
        out, last = selective_scan(**dict(zip(names, ts)), delta_softplus=True, return_last_state=True,
                                   orders=orders, grid=(2, 3), backend="reference")
        return out, last

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_empty_sequence_forward():
    inp, orders = _inputs(2, 4, 0, 3, 1, ["natural", "reverse"])
    out, last = selective_scan(**inp, orders=orders, delta_softplus=True, return_last_state=True,
                               backend="reference")
    assert out.shape == (2, 4, 0) and last.shape == (2, 2, 4, 3)
    assert torch.count_nonzero(last) == 0


def test_empty_sequence_backward():
    u = torch.randn(1, 2, 0, requires_grad=True)
    out = selective_scan(u, u, -torch.ones(2, 3), torch.randn(1, 3, 0), torch.randn(1, 3, 0),
                         D=torch.ones(2), orders=["natural", "reverse"], backend="reference")
    out.sum().backward()
    assert u.grad.shape == u.shape


# ----------------------------------------------------------------------------------------------
# orders


GRIDS = [(3, 5), (5, 3), (1, 4), (4, 1), (2, 2), (1, 1), (7, 7)]


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_every_named_order_is_a_permutation(name):
    for H, W in GRIDS:
        idx = order_index([name], H * W, (H, W))
        assert idx.shape == (1, H * W) and idx.dtype == torch.int32
        assert torch.equal(idx[0].sort().values.long(), torch.arange(H * W)), (name, H, W)
        # and it is the permutation the composed oracle spells out
        tokens = torch.arange(H * W)
        assert torch.equal(idx[0].long(), _to_order(tokens, name, (H, W))), (name, H, W)


def test_known_orders_on_a_2x3_grid():
    idx = order_index(["natural", "reverse", "cols", "cols_reverse", "snake_rows", "snake_cols"], 6, (2, 3))
    assert idx.tolist() == [
        [0, 1, 2, 3, 4, 5],
        [5, 4, 3, 2, 1, 0],
        [0, 3, 1, 4, 2, 5],
        [5, 2, 4, 1, 3, 0],
        [0, 1, 2, 5, 4, 3],
        [0, 3, 4, 1, 2, 5],
    ]


@pytest.fixture
def temporary_order():
    """register_order with the entry removed afterwards (ORDERS is module state)."""
    from vssm.kernels.selective_scan import orders as orders_mod

    added = []

    def add(name, fn, **kw):
        register_order(name, fn, **kw)
        added.append(name)

    yield add
    for name in added:
        ORDERS.pop(name, None)
        orders_mod._GRID_ORDERS.discard(name)
    orders_mod._named_table.cache_clear()


def test_register_order_adds_a_usable_order(temporary_order):
    def evens_then_odds(L, grid):
        return torch.cat([torch.arange(0, L, 2), torch.arange(1, L, 2)])

    temporary_order("test_evens_then_odds", evens_then_odds)
    assert "test_evens_then_odds" in ORDERS
    inp, _ = _inputs(2, 4, 11, 3, 1, ["a", "b"], shared=("u",), seed=9)
    perm = evens_then_odds(11, None)
    out, last = selective_scan(**inp, delta_softplus=True, return_last_state=True,
                               orders=["test_evens_then_odds", "reverse"], backend="reference")
    ref, ref_last = selective_scan_naive(**inp, delta_softplus=True, return_last_state=True,
                                         orders=[perm, "reverse"])
    assert rel_error(out, ref) < 1e-5 and rel_error(last, ref_last) < 1e-5
    with pytest.raises(ValueError, match="exists already"):
        register_order("test_evens_then_odds", evens_then_odds)


def test_register_grid_order_needs_grid(temporary_order):
    def cols_bottom_up(L, grid):
        H, W = grid
        return torch.arange(L).view(H, W).t().flip(1).reshape(-1)

    temporary_order("test_cols_bottom_up", cols_bottom_up, needs_grid=True)
    inp, _ = _inputs(1, 4, 6, 2, 1, ["a", "b"], shared=("u",))
    selective_scan(**inp, orders=["test_cols_bottom_up", "natural"], grid=(2, 3), backend="reference")
    with pytest.raises(ValueError, match="grid"):
        selective_scan(**inp, orders=["test_cols_bottom_up", "natural"], backend="reference")


def test_register_order_that_is_not_a_permutation(temporary_order):
    temporary_order("test_broken", lambda L, grid: torch.zeros(L, dtype=torch.long))
    inp, _ = _inputs(1, 4, 5, 2, 1, ["a"], shared=NAMES)
    with pytest.raises(ValueError, match="test_broken"):
        selective_scan(**inp, orders=["test_broken"], backend="reference")


# ----------------------------------------------------------------------------------------------
# bad arguments name the argument


BAD = [
    # (id, overrides of the inputs (K orders, 2 unless given), selective_scan keywords, exception, pattern)
    ("unknown_order", {}, dict(orders=["natural", "diagonal"]), ValueError, "unknown order 'diagonal'"),
    ("grid_order_without_grid", {}, dict(orders=["natural", "cols"]), ValueError, r"'cols'.*grid=\(H, W\)"),
    ("grid_size", {}, dict(orders=["rows", "cols"], grid=(4, 4)), ValueError, r"`grid`.*L = 15"),
    ("grid_not_ints", {}, dict(orders=["rows", "cols"], grid=(3.0, 5)), ValueError, "`grid`"),
    ("grid_three_dims", {}, dict(orders=["rows", "cols"], grid=(1, 3, 5)), ValueError, "`grid`"),
    ("perm_too_short", {}, dict(orders=["natural", torch.arange(14)]), ValueError, r"`orders\[1\]`.*length"),
    ("perm_repeats", {}, dict(orders=[torch.zeros(15, dtype=torch.long), "natural"]), ValueError,
     r"`orders\[0\]`.*not a permutation"),
    ("perm_out_of_range", {}, dict(orders=[torch.arange(1, 16), "natural"]), ValueError,
     r"`orders\[0\]`.*not a permutation"),
    ("perm_float", {}, dict(orders=[torch.arange(15.0), "natural"]), TypeError, r"`orders\[0\]`.*integer"),
    ("perm_2d", {}, dict(orders=[torch.arange(15).view(3, 5), "natural"]), ValueError, r"`orders\[0\]`"),
    ("order_not_str_or_tensor", {}, dict(orders=["natural", 3]), TypeError, r"`orders\[1\]`"),
    ("orders_empty", {}, dict(orders=[]), ValueError, "`orders`"),
    ("orders_a_string", {}, dict(orders="natural"), ValueError, "`orders`"),
    ("A_wrong_K", dict(A=-torch.ones(3, 4, 3)), dict(orders=VMAMBA, grid=(3, 5)), ValueError, r"`A`.*K=4"),
    ("A_wrong_rank", dict(A=-torch.ones(1, 2, 4, 3)), dict(orders=["natural", "reverse"]), ValueError, "`A`"),
    ("u_wrong_K", dict(u=torch.randn(2, 3, 4, 15)), dict(orders=["natural", "reverse"]), ValueError, "`u`"),
    ("delta_wrong_K", dict(delta=torch.randn(2, 3, 4, 15)), dict(orders=["natural", "reverse"]), ValueError,
     "`delta`"),
    ("z_wrong_K", dict(z=torch.randn(2, 3, 4, 15)), dict(orders=["natural", "reverse"]), ValueError, "`z`"),
    ("B_wrong_K", dict(B=torch.randn(2, 3, 1, 3, 15)), dict(orders=["natural", "reverse"]), ValueError, "`B`"),
    ("C_wrong_K", dict(C=torch.randn(2, 3, 1, 3, 15)), dict(orders=["natural", "reverse"]), ValueError, "`C`"),
    ("D_wrong_K", dict(D=torch.randn(3, 4)), dict(orders=["natural", "reverse"]), ValueError, "`D`"),
    ("delta_bias_wrong_K", dict(delta_bias=torch.randn(3, 4)), dict(orders=["natural", "reverse"]), ValueError,
     "`delta_bias`"),
    ("B_groups_not_dividing", dict(B=torch.randn(2, 2, 3, 3, 15), C=torch.randn(2, 2, 3, 3, 15)),
     dict(orders=["natural", "reverse"]), ValueError, "G=3"),
    ("u_int", dict(u=torch.zeros(2, 2, 4, 15, dtype=torch.long)), dict(orders=["natural", "reverse"]), TypeError,
     "`u`"),
    ("bad_combine", {}, dict(orders=["natural", "reverse"], combine="max"), ValueError, "`combine`"),
    ("grid_without_orders", dict(K=None), dict(grid=(3, 5)), ValueError, "`grid`"),
    ("bad_backend", {}, dict(orders=["natural", "reverse"], backend="cuda"), ValueError, "`backend`"),
]


@pytest.mark.parametrize("over,kw,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_name_the_argument(over, kw, exc, pattern):
    # per-direction inputs for the K orders of the call (single-direction ones with K=None)
    over = dict(over)
    K = over.pop("K", 4 if kw.get("orders") is VMAMBA else 2)
    inp = make_inputs(2, 4, 15, 3, 1, K=K, seed=0)
    inp.update(over)
    with pytest.raises(exc, match=pattern):
        selective_scan(**inp, **kw)


def test_torch_compile_fullgraph_multi_direction():
    # named orders (and the order table's checks) must trace without graph breaks; seen failing on
    # torch 2.11, whose dynamo traces into the lru_cache'd table and stops at torch.equal
    inp, orders = _inputs(1, 4, 6, 2, 1, VMAMBA, shared=("u", "z"), seed=12)
    names = [n for n in NAMES if inp[n] is not None]

    def f(*ts):
        return selective_scan(**dict(zip(names, ts)), delta_softplus=True, orders=orders, grid=(2, 3),
                              backend="reference")

    torch._dynamo.reset()
    args = [inp[n] for n in names]
    torch.testing.assert_close(torch.compile(f, fullgraph=True)(*args), f(*args))


class _Passthrough(torch.utils._python_dispatch.TorchDispatchMode):
    """A dispatch mode that only forwards: the op then goes through torch.ops (the dispatcher path)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("case", ["single_3d_bc", "single_4d_bc", "vim_shared_z", "vmamba_shared_u_3d_bc",
                                  "one_reverse_order"])
def test_eager_path_matches_dispatcher_and_records_no_view_nodes(case):
    """Plain eager calls run one autograd.Function on the caller's tensors: its gradients (put back in the
    caller's shapes, summed over K for shared inputs) equal the torch.ops path's, and the graph has no
    view node between the scan and the leaves."""
    multi = {}
    if case.startswith("single"):
        inp = make_inputs(2, 8, 13, 4, 1 if case == "single_3d_bc" else 2, dtype=torch.float64)
        if case == "single_3d_bc":
            inp["B"], inp["C"] = inp["B"][:, 0], inp["C"][:, 0]
    else:
        orders, shared = {"vim_shared_z": (["natural", "reverse"], ("z",)),
                          "vmamba_shared_u_3d_bc": (VMAMBA, ("u", "B", "C", "A")),
                          "one_reverse_order": (["reverse"], NAMES)}[case]
        inp = make_inputs(2, 8, 12, 4, 1, K=len(orders), shared=shared, dtype=torch.float64)
        if case == "vmamba_shared_u_3d_bc":
            inp["B"], inp["C"] = inp["B"][:, 0], inp["C"][:, 0]
        multi = dict(orders=orders, grid=(3, 4) if case.startswith("vmamba") else None, combine="mean")
    gen = torch.Generator().manual_seed(3)
    results = []
    for dispatcher in (False, True):
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inp.items() if v is not None}
        with _Passthrough() if dispatcher else torch.enable_grad():
            out, last = selective_scan(**leaves, delta_softplus=True, return_last_state=True, backend="reference",
                                       **multi)
        if not dispatcher:
            nodes = [type(f).__name__ for f, _ in out.grad_fn.next_functions if f is not None]
            assert nodes and all(n == "AccumulateGrad" for n in nodes), nodes
        gen.manual_seed(3)
        go, gl = torch.randn(out.shape, generator=gen, dtype=out.dtype), torch.randn(last.shape, generator=gen, dtype=last.dtype)
        grads = torch.autograd.grad([out, last], list(leaves.values()), [go, gl])
        results.append((out, last, dict(zip(leaves, grads))))
    (o1, l1, g1), (o2, l2, g2) = results
    torch.testing.assert_close(o1, o2, rtol=0, atol=0)
    torch.testing.assert_close(l1, l2, rtol=0, atol=0)
    for k in g1:
        assert g1[k].shape == inp[k].shape, k
        torch.testing.assert_close(g1[k], g2[k], rtol=1e-12, atol=1e-12, msg=k)
