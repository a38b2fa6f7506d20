"""The compiled CPU scan (kernels/selective_scan/cpu.py) against the step loop, and what every CPU path owes
its callers: one bad sample never reaches another, L = 0 works, and the op still runs without numba.

Shapes stay tiny and the dtypes few (float64 and float32; bf16 converts to float32): numba compiles each
(direction, dtype) once, and on a machine without its disk cache that is most of this file's time.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import timm
import torch

import vssm  # noqa: F401  (registers the models)
from vssm.kernels import selective_scan
from vssm.kernels.selective_scan import op, selective_scan_naive
from vssm.kernels.selective_scan.cases import NAMES, make_inputs, rel_error

numba = pytest.importorskip("numba")


def _case(batch, dim, L, N, G=1, *, K=None, orders=None, grid=None, combine="sum", shared=(), token_major=False,
          bc_token_major=False, z=True, D=True, delta_bias=True, softplus=True, dtype=torch.float64, seed=0):
    inp = make_inputs(batch, dim, L, N, G, K=K, shared=shared, dtype=dtype, token_major=token_major, z=z, D=D,
                      delta_bias=delta_bias, seed=seed)
    if dtype == torch.float64:
        inp = {k: None if v is None else v.double() for k, v in inp.items()}
    if not softplus:  # without softplus the step must stay positive for a decaying scan
        inp["delta"] = inp["delta"].abs() * 0.1
        if inp["delta_bias"] is not None:
            inp["delta_bias"] = inp["delta_bias"].abs() * 0.1
    if bc_token_major:  # B, C with the states innermost, as the models' x_proj writes them
        for k in ("B", "C"):
            inp[k] = inp[k].transpose(-1, -2).contiguous().transpose(-1, -2)
    kw = dict(delta_softplus=softplus)
    if orders is not None:
        kw.update(orders=orders, grid=grid, combine=combine)
    return inp, kw


def _outputs_and_grads(fn, inp, kw, seed=1):
    """out, last and the gradients of a fixed random loss through both, for every present input."""
    leaves = {k: None if v is None else v.detach().clone().requires_grad_(True) for k, v in inp.items()}
    out, last = fn(**leaves, return_last_state=True, **kw)
    g = torch.Generator().manual_seed(seed)
    loss = (out.double() * torch.randn(out.shape, generator=g, dtype=torch.float64)).sum()
    loss = loss + (last.double() * torch.randn(last.shape, generator=g, dtype=torch.float64)).sum()
    names = [k for k in NAMES if leaves[k] is not None]
    grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    return out, last, dict(zip(names, grads))


def _cpu(**kw):
    return selective_scan(**kw, backend="cpu")


GRID = {
    "L1": dict(batch=2, dim=3, L=1, N=4),
    "oddL-N16-G2-token-major": dict(batch=2, dim=6, L=13, N=16, G=2, token_major=True, bc_token_major=True),
    "N1-no-z-D-bias-no-softplus": dict(batch=1, dim=5, L=9, N=1, z=False, D=False, delta_bias=False, softplus=False),
    "reverse-shared-u-z-mean": dict(batch=2, dim=4, L=11, N=4, K=2, orders=["natural", "reverse"], combine="mean",
                                    shared=("u", "z")),
    "grid-orders-token-major": dict(batch=1, dim=4, L=15, N=2, G=2, K=4, grid=(3, 5), shared=("u",), token_major=True,
                                    orders=["rows", "cols", "rows_reverse", "cols_reverse"], bc_token_major=True),
    "permutation-two-blocks": dict(batch=2, dim=70, L=6, N=3, K=2, z=False,
                                   orders=["natural", torch.randperm(6, generator=torch.Generator().manual_seed(0))]),
    "snake-G2-two-blocks-per-group": dict(batch=1, dim=132, L=6, N=1, G=2, K=2, grid=(2, 3),
                                          orders=["snake_rows", "cols_reverse"]),
}


@pytest.mark.parametrize("name", list(GRID))
def test_matches_step_loop_float64(name):
    inp, kw = _case(**GRID[name])
    out, last, grads = _outputs_and_grads(_cpu, inp, kw)
    ref_out, ref_last, ref_grads = _outputs_and_grads(selective_scan_naive, inp, kw)
    assert out.shape == ref_out.shape and out.dtype == torch.float64
    assert rel_error(out, ref_out) < 1e-12 and rel_error(last, ref_last) < 1e-12
    assert grads.keys() == ref_grads.keys()
    for k in grads:
        assert grads[k].shape == inp[k].shape, k
        assert rel_error(grads[k], ref_grads[k]) < 1e-11, k


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.bfloat16, 1e-2)])
def test_float32_and_bfloat16_inputs(dtype, tol):
    inp, kw = _case(2, 8, 21, 4, 2, K=2, orders=["natural", "reverse"], shared=("u",), token_major=True, dtype=dtype)
    out, last, grads = _outputs_and_grads(_cpu, inp, kw)
    exact = {k: None if v is None else v.double() for k, v in inp.items()}
    ref_out, ref_last, ref_grads = _outputs_and_grads(selective_scan_naive, exact, kw)
    assert out.dtype == dtype and last.dtype == torch.float32
    assert rel_error(out, ref_out) < tol and rel_error(last, ref_last) < 2e-5
    for k in grads:
        assert grads[k].dtype == inp[k].dtype, k
        assert rel_error(grads[k], ref_grads[k]) < max(tol, 1e-4), k


def test_deterministic_and_independent_of_the_thread_count():
    inp, kw = _case(2, 70, 9, 4, K=2, orders=["natural", "reverse"], dtype=torch.float32)
    first = _outputs_and_grads(_cpu, inp, kw)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _outputs_and_grads(_cpu, inp, kw)
    finally:
        torch.set_num_threads(threads)
    for a, b in ((first, single), (first, _outputs_and_grads(_cpu, inp, kw))):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])


POISON = [("delta", (0, 0, 3), float("nan")), ("delta", (0, 1, 7), float("inf")), ("u", (0, 2, 5), float("inf")),
          ("B", (0, 0, 1, 9), float("nan")), ("z", (0, 3, 0), float("-inf")), ("delta", (0, 0, 0), float("-inf"))]


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("where,index,value", POISON, ids=[f"{w}-{v}" for w, _, v in POISON])
def test_a_bad_sample_leaves_the_others_bit_identical(backend, where, index, value):
    # the reported case: one NaN in delta[0, 0, 3] at L = 600 used to poison sample 1 in the reference
    inp, kw = _case(2, 4, 600, 4, dtype=torch.float32)

    def run(x):
        return _outputs_and_grads(lambda **a: selective_scan(**a, backend=backend), x, kw)

    clean = run(inp)
    bad = {k: None if v is None else v.clone() for k, v in inp.items()}
    bad[where][index] = value
    poisoned = run(bad)
    assert torch.equal(poisoned[0][1], clean[0][1]) and torch.equal(poisoned[1][1], clean[1][1])
    for k in ("u", "delta", "B", "C", "z"):  # the per-sample gradients
        assert torch.equal(poisoned[2][k][1], clean[2][k][1]), k
    assert not torch.isfinite(poisoned[0][0]).all() or where == "delta" and value < 0


def test_a_bad_sample_in_visiting_orders_and_groups():
    inp, kw = _case(2, 8, 12, 4, 2, K=4, grid=(3, 4), orders=["rows", "cols", "rows_reverse", "cols_reverse"],
                    shared=("u",), dtype=torch.float32)
    clean = _outputs_and_grads(_cpu, inp, kw)
    bad = {k: None if v is None else v.clone() for k, v in inp.items()}
    bad["delta"][0, 2, 5, 7] = float("nan")
    bad["C"][0, 1, 1, 2, 3] = float("inf")
    poisoned = _outputs_and_grads(_cpu, bad, kw)
    assert torch.equal(poisoned[0][1], clean[0][1]) and torch.equal(poisoned[1][1], clean[1][1])
    assert all(torch.equal(poisoned[2][k][1], clean[2][k][1]) for k in ("u", "delta", "B", "C", "z"))


MODELS = {
    "vim": ("vim_tiny_patch16_224", dict(embed_dim=32, depth=2, num_classes=7, img_size=64), 64),
    "vmamba": ("vmamba_tiny_s1l8", dict(depths=(1, 1, 1, 1), embed_dim=32, num_classes=7), 64),
    "simba": ("simba_s", dict(stem_hidden_dim=8, embed_dims=(16, 16, 32, 32), depths=(1, 1, 2, 1), d_state=4,
                              num_classes=7), 64),
}


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("family", list(MODELS))
def test_models_keep_a_bad_image_to_itself(family, backend, monkeypatch):
    monkeypatch.setenv("VSSM_SCAN_BACKEND", backend)
    name, kwargs, size = MODELS[family]
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    x = torch.randn(2, 3, size, size)
    bad = x.clone()
    bad[0, 1, 5, 7] = float("nan")
    with torch.inference_mode():
        clean, poisoned = model(x), model(bad)
    assert torch.isnan(poisoned[0]).any()
    assert torch.equal(poisoned[1], clean[1])


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("orders", [None, ["natural", "reverse"]])
def test_empty_sequence_forward_and_backward(backend, orders):
    inp, kw = _case(2, 4, 0, 3, K=None if orders is None else 2, orders=orders)
    out, last, grads = _outputs_and_grads(lambda **a: selective_scan(**a, backend=backend), inp, kw)
    assert out.shape == (2, 4, 0) and torch.count_nonzero(last) == 0
    for k, g in grads.items():
        assert g.shape == inp[k].shape and torch.count_nonzero(g) == 0, k


def test_reference_fallback_without_numba(monkeypatch):
    """No numba (simulated): the default CPU backend is the reference, which still matches the loop."""
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
    monkeypatch.delitem(sys.modules, "vssm.kernels.selective_scan.cpu", raising=False)
    monkeypatch.delattr(sys.modules["vssm.kernels.selective_scan"], "cpu", raising=False)
    monkeypatch.delenv("VSSM_SCAN_BACKEND", raising=False)
    op._cpu_available.cache_clear()
    try:
        assert op.default_backend(torch.device("cpu")) == "reference"
        inp, kw = _case(2, 4, 7, 3, K=2, orders=["natural", "reverse"])
        out, last, grads = _outputs_and_grads(selective_scan, inp, kw)
        ref_out, ref_last, ref_grads = _outputs_and_grads(selective_scan_naive, inp, kw)
        assert rel_error(out, ref_out) < 1e-12 and rel_error(last, ref_last) < 1e-12
        assert all(rel_error(grads[k], ref_grads[k]) < 1e-10 for k in grads)
        with pytest.raises(ValueError, match="needs numba"):
            selective_scan(**inp, **kw, backend="cpu")
    finally:
        op._cpu_available.cache_clear()


def test_compilation_is_announced_once(caplog, monkeypatch):
    from vssm.kernels.selective_scan import cpu

    made = []

    class Compiled:  # stands in for a numba dispatcher that had to compile (a disk-cache miss)
        def __init__(self, fn):
            self.stats = type("Stats", (), {"cache_misses": {"signature": 1}})()
            made.append(fn.__name__)

    monkeypatch.setattr(cpu, "njit", lambda *args, **kwargs: Compiled)
    monkeypatch.setattr(cpu, "_compiled", {})
    args = (np.zeros(3, np.float32), 1)
    with caplog.at_level(logging.WARNING, logger=cpu.__name__):
        first = cpu._kernels("forward", args)
        assert cpu._kernels("forward", args) is first
    assert made == ["_forward_items", "_forward_launch"]  # float32: the loop and its parallel launcher
    assert [r.message.split(" in ")[0] for r in caplog.records] == [
        "vssm: compiled the numba CPU selective scan (forward, float32)"]


def test_float32_exp2_special_values_and_accuracy():
    """The loops' float32 2^v: within 3 ulp of the exact value on the normal range, 0 from -126.5 down, inf
    above 127.5, NaN kept; between -126.5 and -126 (subnormal results) close in absolute terms."""
    from numba import njit

    from vssm.kernels.selective_scan import cpu

    @njit
    def exp2_all(v, out):
        for i in range(v.shape[0]):
            out[i] = cpu._exp2(v[i])

    rng = np.random.default_rng(0)
    v = np.concatenate([rng.uniform(-126, 127, 20000), rng.uniform(-2, 2, 20000), np.arange(-126, 128) + 0.5,
                        np.arange(-126, 128)]).astype(np.float32)
    got = np.empty_like(v)
    exp2_all(v, got)
    exact = np.exp2(v.astype(np.float64))
    normal = exact < np.finfo(np.float32).max
    ulp = np.spacing(exact[normal].astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got[normal] - exact[normal]) <= 3 * ulp)
    special = np.array([np.nan, np.inf, -np.inf, -126.5, -127, -200, 1e30, 127.6, 128, 300, -1e30], np.float32)
    out = np.empty_like(special)
    exp2_all(special, out)
    assert np.isnan(out[0]) and out[1] == np.inf and np.all(out[[2, 3, 4, 5, 10]] == 0)
    assert np.all(out[[6, 7, 8, 9]] == np.inf)
    sub = np.linspace(-126.49, -126, 99).astype(np.float32)
    got_sub = np.empty_like(sub)
    exp2_all(sub, got_sub)
    assert np.all(np.abs(got_sub - np.exp2(sub.astype(np.float64))) <= 2.0 ** -148)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_item_ranges_per_thread_give_identical_results(threads):
    """Each thread runs a contiguous range of items with scratch arrays made once per range: short channel
    blocks (here 64 + 2 channels per group) next to full ones, in any split, leave the results bit-identical."""
    inp, kw = _case(3, 132, 23, 5, 2, K=2, orders=["natural", "reverse"], shared=("z",), token_major=True,
                    dtype=torch.float32)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _outputs_and_grads(_cpu, inp, kw)
        torch.set_num_threads(threads)
        split = _outputs_and_grads(_cpu, inp, kw)
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(one[0], split[0]) and torch.equal(one[1], split[1])
    assert all(torch.equal(one[2][k], split[2][k]) for k in one[2])
    exact = {k: None if v is None else v.double() for k, v in inp.items()}
    ref_out, ref_last, _ = _outputs_and_grads(selective_scan_naive, exact, kw)
    assert rel_error(split[0], ref_out) < 2e-5 and rel_error(split[1], ref_last) < 2e-5


def test_reference_short_chunks_grow_the_channel_blocks():
    """Strong decays force short chunks; the reference then takes wider channel blocks (fewer, larger ops
    in the cross-chunk carry) and still matches the step loop, outputs and every gradient."""
    from vssm.kernels.selective_scan import reference

    inp, _ = _case(2, 96, 40, 4, 2)
    inp["A"] = inp["A"] * 40  # |dt A| up to tens per step: chunks of a few steps
    u, delta, A, B, C, D, z, bias = (inp[k] for k in NAMES)
    T = min(reference._row_chunk_lens(u, delta, A, bias, True, None))
    small = 1 << 9  # without short chunks: one block per channel here
    assert T < u.shape[-1]
    assert 1 < len(reference._channel_blocks(u, B, small, T=T)) < len(reference._channel_blocks(u, B, small))

    leaves = [t.detach().clone().requires_grad_(True) for t in (u, delta, A, B, C, D, z, bias)]
    ref_out, ref_last = selective_scan_naive(*leaves, delta_softplus=True, return_last_state=True)
    g = torch.Generator().manual_seed(1)
    dout = torch.randn(ref_out.shape, generator=g, dtype=torch.float64)
    dlast = torch.randn(ref_last.shape, generator=g, dtype=torch.float64)
    ref_grads = torch.autograd.grad((ref_out * dout).sum() + (ref_last * dlast).sum(), leaves)
    out, last = reference.selective_scan_reference(u, delta, A, B, C, D, z, bias, True, True, cache_elements=small)
    grads = reference.selective_scan_reference_backward(dout, dlast, u, delta, A, B, C, D, z, bias, True,
                                                        cache_elements=small)
    assert rel_error(out, ref_out) < 1e-12 and rel_error(last, ref_last) < 1e-12
    for name, a, b in zip(NAMES, grads, ref_grads):
        assert rel_error(a, b) < 1e-10, name
