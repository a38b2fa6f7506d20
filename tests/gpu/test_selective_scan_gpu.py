"""GPU tests of the Triton selective scan against float64 oracles (skipped without CUDA).

The oracle is the op's reference backend in float64 (the step loop `selective_scan_naive` is too slow
at these lengths), and for multi-direction calls also the COMPOSED scan: one single-direction
reference call per direction on explicit flip / H x W transpose copies, mapped back and summed.

Tolerances are relative L2 errors ||x - ref|| / ||ref|| of outputs, last states and gradients.
Inputs are drawn once (`cases.make_inputs`) and rounded to bfloat16, so every dtype sees the same
values and the float64 result of those values is the truth for all of them; what remains is the
kernels' rounding: float32 math throughout, plus outputs and gradients stored in the input dtype.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from launch_spy import LaunchSpy

from vssm.kernels.selective_scan import selective_scan
from vssm.kernels.selective_scan.cases import make_inputs

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TOL = {torch.float32: 2e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
TOKENS = ("u", "delta", "z", "B", "C")
PER_DIR_DIMS = dict(u=4, delta=4, z=4, B=5, C=5, A=3, D=2, delta_bias=2)
LEAD = dict(u=1, delta=1, z=1, B=1, C=1, A=0, D=0, delta_bias=0)
VMAMBA = ["rows", "cols", "rows_reverse", "cols_reverse"]
NG = [(1, 1), (16, 4), (64, 1), (16, 1), (1, 4), (64, 4)]


# ----------------------------------------------------------------------------------------------
# inputs and oracles


def _inputs(batch, dim, L, N, G, *, K=None, shared=(), z=True, D=True, bias=True, softplus=True,
            token_major=False, seed=0):
    """`make_inputs` on the GPU; token tensors rounded to bfloat16 and held in float32."""
    inp = make_inputs(batch, dim, L, N, G, K=K, shared=shared, dtype=torch.bfloat16, device="cuda", z=z, D=D,
                      delta_bias=bias, token_major=token_major, seed=seed)
    inp = {n: None if t is None else t.float() for n, t in inp.items()}  # keeps token-major strides
    if not softplus:  # delta (+ bias) is the step size itself: small and positive
        inp["delta"] = 0.1 * inp["delta"].abs()
        if inp["delta_bias"] is not None:
            inp["delta_bias"] = 0.01 * inp["delta_bias"].abs()
    return inp


def _to_order(t, o, grid):
    if isinstance(o, torch.Tensor):
        return t.index_select(-1, o)
    if o in ("natural", "rows"):
        return t
    if o in ("reverse", "rows_reverse"):
        return t.flip(-1)
    H, W = grid
    if o == "cols":
        return t.unflatten(-1, (H, W)).transpose(-1, -2).flatten(-2)
    if o == "cols_reverse":
        return _to_order(t, "cols", grid).flip(-1)
    raise NotImplementedError(o)


def _from_order(y, o, grid):
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
    raise NotImplementedError(o)


def composed(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
             *, orders, grid=None, combine="sum", backend="reference"):
    """The multi-direction scan as K single-direction calls on reordered copies, summed back."""
    args = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    out, lasts = 0, []
    for k, o in enumerate(orders):
        kw = {}
        for n, t in args.items():
            if t is not None and t.dim() == PER_DIR_DIMS[n]:
                t = t.select(LEAD[n], k)
            kw[n] = _to_order(t, o, grid).contiguous() if t is not None and n in TOKENS else t
        y, last = selective_scan(**kw, delta_softplus=delta_softplus, return_last_state=True, backend=backend)
        out = out + _from_order(y, o, grid)
        lasts.append(last)
    out = out / len(orders) if combine == "mean" else out
    last = torch.stack(lasts, dim=1)
    return (out, last) if return_last_state else out


def _run(fn, leaves, dout, dlast, kw):
    out, last = fn(**leaves, return_last_state=True, **kw)
    names = [n for n in NAMES if leaves[n] is not None]
    grads = torch.autograd.grad((out, last), [leaves[n] for n in names], (dout.to(out.dtype), dlast.to(last.dtype)))
    return out.detach(), last.detach(), dict(zip(names, grads))


def _cotangents(inp, kw):
    u, A = inp["u"], inp["A"]
    batch, dim, L, N = u.shape[0], u.shape[-2], u.shape[-1], A.shape[-1]
    g = torch.Generator(device="cuda").manual_seed(123)
    dout = torch.randn(batch, dim, L, device="cuda", generator=g).bfloat16().double()
    last_shape = (batch, len(kw["orders"]), dim, N) if kw.get("orders") is not None else (batch, dim, N)
    dlast = torch.randn(last_shape, device="cuda", generator=g).double()
    return dout, dlast


def _reference(inp, kw, *, use_composed=False):
    """float64 out, last, dout, dlast and gradients: the reference backend, or the composed scan."""
    leaves = {n: None if t is None else t.detach().double().requires_grad_(True) for n, t in inp.items()}
    dout, dlast = _cotangents(inp, kw)
    fn = composed if use_composed else functools.partial(selective_scan, backend="reference")
    out, last, grads = _run(fn, leaves, dout, dlast, kw)
    return out, last, dout, dlast, grads


def _cast(inp, dtype):
    """Token tensors in `dtype`, parameters (A, D, delta_bias) in float32 as in the models; new leaves
    that keep the inputs' strides (a strided slice stays one when the dtype does not change)."""
    return {n: None if t is None else (t.to(dtype) if n in TOKENS else t).detach() for n, t in inp.items()}


def _rel(a, b):
    # The floor turns the check absolute (RMS error <= tol * 1e-3) for gradients whose exact value is
    # near zero, as dA at L = 1 (no earlier state: every term is 0, the kernel returns rounding).
    floor = 1e-3 * math.sqrt(max(1, b.numel()))
    return float((a.double() - b).norm() / max(float(b.norm()), floor))


def _check(label, dtype, out, last, grads, ref):
    out_r, last_r, _, _, grads_r = ref
    tol = TOL[dtype]
    assert out.dtype == dtype and last.dtype == torch.float32, label
    assert out.shape == out_r.shape and last.shape == last_r.shape, label
    assert torch.isfinite(out).all() and torch.isfinite(last).all(), f"{label} {dtype}: non-finite output"
    errs = {"out": _rel(out, out_r), "last": _rel(last, last_r)}
    assert grads.keys() == grads_r.keys(), label
    for n, gr in grads_r.items():
        assert grads[n].shape == gr.shape, f"{label}: d{n} shape"
        assert torch.isfinite(grads[n]).all(), f"{label} {dtype}: non-finite d{n}"
        errs["d" + n] = _rel(grads[n], gr)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"{label} {dtype}: errors over {tol:g}: {bad}"


def _compare(inp, dtypes, label, kw=None, ref=None):
    kw = dict(delta_softplus=True) if kw is None else kw
    ref = _reference(inp, kw) if ref is None else ref
    _, _, dout, dlast, _ = ref
    for dtype in dtypes:
        leaves = {n: None if t is None else t.requires_grad_(True) for n, t in _cast(inp, dtype).items()}
        out, last, grads = _run(functools.partial(selective_scan, backend="triton"), leaves, dout, dlast, kw)
        _check(label, dtype, out, last, grads, ref)
    return ref


# ----------------------------------------------------------------------------------------------
# one direction


@pytest.mark.parametrize("L", [1, 7, 197, 2048, 2049, 6085, 16384])
def test_lengths_states_groups(L):
    for i, (N, G) in enumerate(NG):
        inp = _inputs(2, 32, L, N, G, D=i % 2 == 0, bias=i % 3 != 0, seed=L + i)
        if G == 1 and i == 0:  # 3-D B/C
            inp["B"], inp["C"] = inp["B"][:, 0], inp["C"][:, 0]
        dtypes = (torch.float32, torch.bfloat16) if L == 16384 else (torch.float32,)
        _compare(inp, dtypes, f"L={L} N={N} G={G}")


@pytest.mark.parametrize("z,softplus", [(False, False), (False, True), (True, False)])
def test_options(z, softplus):
    inp = _inputs(3, 48, 300, 16, 2, z=z, softplus=softplus, seed=7)
    _compare(inp, (torch.float32, torch.float16), f"z={z} softplus={softplus}", dict(delta_softplus=softplus))


def test_noncontiguous_inputs():
    batch, dim, L, N, G = 2, 64, 1000, 16, 2
    inp = _inputs(batch, dim, L, N, G, token_major=True, seed=3)  # u, delta, z: (batch, L, D) storage
    bc = lambda t: t.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # B/C stored (batch, L, G, N)
    inp["B"], inp["C"] = bc(inp["B"]), bc(inp["C"])
    assert inp["u"].stride(1) == 1 and not inp["B"].is_contiguous()
    ref = _reference(inp, dict(delta_softplus=True))
    for dtype in (torch.float32, torch.bfloat16):
        _compare(inp, (dtype,), f"token-major {dtype}", ref=ref)
    out = selective_scan(**_cast(inp, torch.bfloat16), delta_softplus=True, backend="triton")
    assert out.stride(1) == 1, "token-major u gives a token-major out"
    # a strided slice of a wider tensor (every other token)
    wide = torch.randn(batch, dim, 2 * L, device="cuda").bfloat16().float()
    _compare({**_inputs(batch, dim, L, N, G, seed=4), "u": wide[..., ::2]}, (torch.float32,), "strided u")


BENCH_SHAPES = {
    "vim_s_224": (128, 768, 197, 16, 1),
    "vim_ti_1248": (8, 384, 6085, 16, 1),
    "vmamba_t_s1": (128, 768, 3136, 1, 4),
    "n16_g4": (64, 384, 3136, 16, 4),
    "simba_s1": (128, 128, 3136, 64, 1),  # SiMBA-S stage 1 (N = 64: the wide forward tiles)
}


@pytest.mark.parametrize("name", list(BENCH_SHAPES))
def test_benchmark_shapes_all_dtypes(name):
    # real D, L, N, G; batch cut to 4 so the float64 reference fits beside parallel test workers
    batch, dim, L, N, G = BENCH_SHAPES[name]
    _compare(_inputs(min(batch, 4), dim, L, N, G), (torch.float32, torch.bfloat16, torch.float16), name)


# ----------------------------------------------------------------------------------------------
# several directions at full size, against the composed scan


def test_vim_s_bidirectional_full_size():
    # Vim-S: natural + reverse, every input per direction except z, the two outputs averaged
    inp = _inputs(128, 768, 197, 16, 1, K=2, shared=("z",), seed=21)
    kw = dict(delta_softplus=True, orders=["natural", "reverse"], combine="mean")
    ref = _reference(inp, kw, use_composed=True)
    _compare(inp, (torch.float32, torch.bfloat16), "Vim-S bidirectional", kw, ref=ref)


def test_vmamba_t_stage1_four_orders_full_size():
    # VMamba-T stage 1: 56 x 56 tokens, N = 1, the four cross-scan orders over one shared u, no z
    inp = _inputs(128, 192, 56 * 56, 1, 1, K=4, shared=("u",), z=False, seed=22)
    kw = dict(delta_softplus=True, orders=VMAMBA, grid=(56, 56))
    ref = _reference(inp, kw, use_composed=True)
    _compare(inp, (torch.float32, torch.bfloat16), "VMamba-T s1", kw, ref=ref)


def test_vmamba_token_major_odd_grid():
    # a Linear's (batch, L, D) output as u; odd H and W
    inp = _inputs(4, 96, 15 * 21, 1, 1, K=4, shared=("u",), z=False, token_major=True, seed=23)
    kw = dict(delta_softplus=True, orders=VMAMBA, grid=(15, 21))
    ref = _reference(inp, kw, use_composed=True)
    _compare(inp, (torch.float32, torch.bfloat16), "VMamba token-major 15x21", kw, ref=ref)


def test_long_bf16_multi_direction():
    inp = _inputs(2, 64, 16384, 16, 1, K=2, shared=("z",), seed=24)
    _compare(inp, (torch.float32, torch.bfloat16), "L=16384 bidirectional",
             dict(delta_softplus=True, orders=["natural", "reverse"]))


# ----------------------------------------------------------------------------------------------
# the N = 1 chunk-walking backward, forced


def _normal_form(inp, orders, grid):
    from vssm.kernels.selective_scan import op

    user = [inp[n] for n in NAMES]
    if orders is None:
        return list(op._normalize_single(*user)), None
    *args, index = op._normalize_orders(*user, orders, grid)
    return args, index


def _user_grads(normal, inp):
    """Normal-form gradients -> the shapes of the user's inputs (a shared input sums over K)."""
    res = {}
    for n, g in zip(NAMES, normal):
        t = inp[n]
        if t is None:
            assert g is None, n
            continue
        if tuple(g.shape) != tuple(t.shape):
            g = g.sum(dim=LEAD[n]).reshape(t.shape)
        res[n] = g
    return res


@pytest.mark.parametrize("L", [1, 7, 2049, 16384])
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_n1_walking_backward_forced(L, multi):
    # the op picks the walking kernel from 264 programs on; call it directly on small batches here,
    # once recomputing the chunk-start states (carry pass) and once on the states the forward kept
    from vssm.kernels.selective_scan.triton_bwd_n1 import triton_backward_walk
    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
    from vssm.kernels.selective_scan.triton_fwd import triton_forward

    for i, G in enumerate((1, 4)):
        if multi:
            perm = torch.randperm(L, generator=torch.Generator().manual_seed(L)).cuda()
            orders = ["natural", "reverse", perm]
            inp = _inputs(2, 64, L, 1, G, K=3, shared=("u",), D=i == 0, bias=i == 1, seed=3 * L + i)
        else:
            orders = None
            inp = _inputs(2, 64, L, 1, G, D=i == 0, bias=i == 1, seed=3 * L + i)
        kw = dict(delta_softplus=True, **({} if orders is None else dict(orders=orders, combine="mean")))
        ref = _reference(inp, kw)
        _, _, dout, dlast, _ = ref
        scale = 1.0 / len(orders) if orders is not None else 1.0
        for dtype in (torch.float32, torch.bfloat16):
            cast = _cast(inp, dtype)
            args, index = _normal_form(cast, orders, None)
            dlast_k = dlast.unsqueeze(1) if orders is None else dlast
            for keep in (False, True):
                states_T = DEFAULT_TILES.walk_T if keep else 0
                out, last, states = triton_forward(*args, index, True, scale, states_T=states_T)
                assert (states is not None) == keep
                grads = triton_backward_walk(dout.to(dtype).contiguous(), dlast_k.float(), *args, index, True, scale,
                                             states=states)
                last = last[:, 0] if orders is None else last
                label = f"walk L={L} G={G} multi={multi} kept states={keep}"
                _check(label, dtype, out, last, _user_grads(grads, cast), ref)


def test_op_walks_on_kept_states():
    # VMamba-T stage 1 sizes walk in the op (channel-major N = 1, >= 264 programs), on the forward's states
    from vssm.kernels.selective_scan import op

    inp = _inputs(8, 192, 28 * 28, 1, 1, K=4, shared=("u",), z=False, seed=25)
    args, _ = _normal_form(inp, VMAMBA, (28, 28))
    assert op._walks(args[0], args[2], args[3])
    kw = dict(delta_softplus=True, orders=VMAMBA, grid=(28, 28))
    _compare(inp, (torch.float32, torch.bfloat16), "op walk on kept states", kw)
    # token-major N = 1 runs the chunk-parallel backward
    tm = {n: (t.transpose(-1, -2).contiguous().transpose(-1, -2) if n in ("u", "delta") else t)
          for n, t in inp.items()}
    args, _ = _normal_form(tm, VMAMBA, (28, 28))
    assert not op._walks(args[0], args[2], args[3])
    _compare(tm, (torch.float32, torch.bfloat16), "op token-major N = 1", kw)


# ----------------------------------------------------------------------------------------------
# determinism and torch.compile


DET_CASES = {
    "n16_g1": dict(shape=(8, 256, 6085, 16, 1), kw={}),
    "n1_g4_walk": dict(shape=(8, 256, 6085, 1, 4), kw={}),  # 512 programs: the walking backward
    "vim_bidirectional": dict(shape=(8, 384, 1000, 16, 1), K=2, shared=("z",),
                              kw=dict(orders=["natural", "reverse"], combine="mean")),
    "vmamba_four_orders": dict(shape=(8, 192, 56 * 56, 1, 1), K=4, shared=("u",), z=False,
                               kw=dict(orders=VMAMBA, grid=(56, 56))),
}


@pytest.mark.parametrize("name", list(DET_CASES))
def test_deterministic(name):
    c = DET_CASES[name]
    inp = _inputs(*c["shape"], K=c.get("K"), shared=c.get("shared", ()), z=c.get("z", True), seed=11)
    leaves = [t.requires_grad_(True) if t is not None else None for t in (inp[n] for n in NAMES)]
    runs = []
    for _ in range(2):
        out = selective_scan(*leaves, delta_softplus=True, backend="triton", **c["kw"])
        grads = torch.autograd.grad(out, [t for t in leaves if t is not None], torch.ones_like(out))
        runs.append([out, *grads])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_torch_compile_fullgraph_multi_direction():
    inp = _inputs(2, 64, 20 * 25, 16, 1, K=4, shared=("u", "z"), seed=9)
    leaves = [inp[n].requires_grad_(True) for n in NAMES]

    def f(u, delta, A, B, C, D, z, db):
        out = selective_scan(u, delta, A, B, C, D, z, db, delta_softplus=True, orders=VMAMBA, grid=(20, 25),
                             combine="mean", backend="triton")
        return (out * out).sum()

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True)
    eager = f(*leaves)
    ge = torch.autograd.grad(eager, leaves)
    comp = compiled(*leaves)
    gc = torch.autograd.grad(comp, leaves)
    # the same kernels run in both; only the final sum may be reduced in another order
    torch.testing.assert_close(comp, eager, rtol=1e-4, atol=1e-3)
    for a, b in zip(gc, ge):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# the walking forward (Tiles.fwd_walk: a channel's states in one thread's registers)


@pytest.mark.parametrize("name,orders,token_major,loop", [
    ("vim_s_224", ["natural", "reverse"], True, False),
    ("vim_s_224", ["natural", "reverse"], True, True),  # one program adds both directions (barrier)
    ("vim_ti_1248", ["natural", "reverse"], True, True),
    ("vim_s_224", None, False, False),
    ("n16_g4", None, False, False),
])
def test_walking_forward(name, orders, token_major, loop, monkeypatch):
    import dataclasses

    from vssm.kernels.selective_scan import triton_fwd
    from vssm.kernels.selective_scan.op import prepare
    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
    from vssm.kernels.selective_scan.triton_fwd import triton_forward

    spy = LaunchSpy(triton_fwd._fwd_walk_kernel)
    monkeypatch.setattr(triton_fwd, "_fwd_walk_kernel", spy)

    _, dim, L, N, G = BENCH_SHAPES[name]  # batch cut to 4 for the float64 reference
    K = None if orders is None else len(orders)
    multi = dict(orders=orders, combine="mean") if orders else {}
    inp = _inputs(4, dim, L, N, G, K=K, shared=("z",) if K else (), token_major=token_major, seed=L + N)
    out_r, last_r = selective_scan(**{n: None if t is None else t.double() for n, t in inp.items()},
                                   delta_softplus=True, return_last_state=True, backend="reference", **multi)
    if K is None:
        last_r = last_r.unsqueeze(1)
    tiles = dataclasses.replace(DEFAULT_TILES, fwd_walk=True, fwd_walk_loop_min_programs=1 if loop else 1 << 30)
    for dtype in (torch.float32, torch.bfloat16):
        x = _cast(inp, dtype)
        args = prepare(*(x[n] for n in NAMES), True, orders, None, "mean" if K else "sum", "triton", grad=False)
        out, last, _ = triton_forward(*args[:11], tiles=tiles)
        assert out.dtype == dtype and out.shape == out_r.shape and last.shape == last_r.shape
        assert torch.isfinite(out).all() and torch.isfinite(last).all()
        errs = {"out": _rel(out, out_r), "last": _rel(last, last_r)}
        assert all(e <= TOL[dtype] for e in errs.values()), f"{name} {orders} {dtype}: {errs}"
    assert len(spy.launches) == 2, "the walking kernel ran once per dtype"


# ----------------------------------------------------------------------------------------------
# the chunk forward with states-middle tiles (Tiles.fwd_smid)


@pytest.mark.parametrize("name,N,orders,token_major,loop,long", [
    ("vim_ti_1248", 16, ["natural", "reverse"], False, False, True),  # Vim-Ti at 1248: directions apart, T doubled
    ("vim_ti_1248", 8, ["natural", "reverse"], True, True, False),  # one program adds both directions
    ("vim_s_224", 16, ["natural", "reverse"], True, False, False),
    ("vim_s_224", 12, None, False, False, False),  # padded states
    ("n16_g4", 16, None, False, False, True),
])
def test_states_middle_forward(name, N, orders, token_major, loop, long, monkeypatch):
    import dataclasses

    from vssm.kernels.selective_scan import triton_fwd
    from vssm.kernels.selective_scan.op import prepare
    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
    from vssm.kernels.selective_scan.triton_fwd import triton_forward

    spy = LaunchSpy(triton_fwd._fwd_kernel)
    monkeypatch.setattr(triton_fwd, "_fwd_kernel", spy)
    _, dim, L, _, G = BENCH_SHAPES[name]  # batch cut to 4 for the float64 reference
    K = None if orders is None else len(orders)
    multi = dict(orders=orders, combine="mean") if orders else {}
    inp = _inputs(4, dim, L, N, G, K=K, shared=("z",) if K else (), token_major=token_major, seed=L + N + 1)
    out_r, last_r = selective_scan(**{n: None if t is None else t.double() for n, t in inp.items()},
                                   delta_softplus=True, return_last_state=True, backend="reference", **multi)
    if K is None:
        last_r = last_r.unsqueeze(1)
    tiles = dataclasses.replace(DEFAULT_TILES, fwd_smid=True, fwd_loop_min_programs=1 if loop else 1 << 30,
                                fwd_smid_long_max_programs=1 << 30 if long else 0)
    for dtype in (torch.float32, torch.bfloat16):
        x = _cast(inp, dtype)
        args = prepare(*(x[n] for n in NAMES), True, orders, None, "mean" if K else "sum", "triton", grad=False)
        out, last, _ = triton_forward(*args[:11], backward=True, tiles=tiles)
        assert out.dtype == dtype and out.shape == out_r.shape and last.shape == last_r.shape
        assert torch.isfinite(out).all() and torch.isfinite(last).all()
        errs = {"out": _rel(out, out_r), "last": _rel(last, last_r)}
        assert all(e <= TOL[dtype] for e in errs.values()), f"{name} N={N} {orders} {dtype}: {errs}"
    T = DEFAULT_TILES.fwd_smid_T * (16 // (1 << (N - 1).bit_length())) * (2 if long else 1)
    # backward=True: the exact softplus log (the approximated one only without a backward, `test_fast_log_softplus`)
    assert [(k["SMID"], k["T"], k["MODE"], k["SOFTPLUS"]) for _, _, k in spy.launches] == [(True, T, int(loop), 1)] * 2


@pytest.mark.parametrize("batch,dim,L,N,orders,two_pass", [(1, 384, 6085, 16, ["natural", "reverse"], False),
                                                          (2, 192, 12544, 1, None, True)],
                         ids=["vim_ti_1248_batch1_serial_carry", "n1_long_two_pass_carry"])
def test_forward_segments_carry(batch, dim, L, N, orders, two_pass, monkeypatch):
    # a short batch on a long sequence: time segments whose start states come from the carry, with the default
    # tiles, against float64: 191 chunks walked in one pass; 784 in two (several local segments per time segment
    # side by side, then the combine)
    from vssm.kernels.selective_scan import triton_carry
    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES

    local = LaunchSpy(triton_carry._carry_local_kernel)
    serial = LaunchSpy(triton_carry._carry_kernel)
    monkeypatch.setattr(triton_carry, "_carry_local_kernel", local)
    monkeypatch.setattr(triton_carry, "_carry_kernel", serial)
    K = None if orders is None else len(orders)
    multi = dict(orders=orders, combine="mean") if orders else {}
    inp = _inputs(batch, dim, L, N, 1, K=K, shared=("z",) if K else (), seed=L + N)
    out_r, last_r = selective_scan(**{n: None if t is None else t.double() for n, t in inp.items()},
                                   delta_softplus=True, return_last_state=True, backend="reference", **multi)
    for dtype in (torch.float32, torch.bfloat16):
        with torch.no_grad():
            out, last = selective_scan(**_cast(inp, dtype), delta_softplus=True, return_last_state=True,
                                       backend="triton", **multi)
        errs = {"out": _rel(out, out_r), "last": _rel(last, last_r)}
        assert all(e <= TOL[dtype] for e in errs.values()), f"{dtype}: {errs}"
    if not two_pass:
        assert len(serial.launches) == 2 and not local.launches, "the carry walked its chunks once per dtype"
        return
    assert len(local.launches) == 2 and not serial.launches, "the local pass ran once per dtype"
    (programs,), _, _ = local.launches[0]  # local segments x channel blocks, side by side
    assert programs >= DEFAULT_TILES.carry_min_programs // 2, f"{programs} programs in the local pass"


@pytest.mark.parametrize("walk", [False, True], ids=["chunk", "walk"])
def test_fast_log_softplus(walk, monkeypatch):
    """The forward kernels' softplus with its log from lg2.approx (the CUDA default) against the libdevice log, float32,
    Vim-Ti's shape at 1248 (batch 2) with softplus inputs from -30 to 30: the outputs and last states agree to float32
    rounding, and each launch took the requested SOFTPLUS mode."""
    import dataclasses

    from vssm.kernels.selective_scan import triton_fwd
    from vssm.kernels.selective_scan.op import prepare
    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES

    name = "_fwd_walk_kernel" if walk else "_fwd_kernel"
    spy = LaunchSpy(getattr(triton_fwd, name))
    monkeypatch.setattr(triton_fwd, name, spy)
    inp = _cast(_inputs(2, 384, 6085, 16, 1, K=2, shared=("z",), token_major=walk, seed=3), torch.float32)
    inp["delta"] = (torch.rand_like(inp["delta"]) * 60 - 30).to(inp["delta"].dtype)
    args = prepare(*(inp[n] for n in NAMES), True, ["natural", "reverse"], None, "mean", "triton", grad=False)
    res = {}
    for fast in (False, True):
        tiles = dataclasses.replace(DEFAULT_TILES, fwd_fast_log=fast, fwd_walk=walk, fwd_smid=None if walk else True)
        res[fast] = triton_fwd.triton_forward(*args[:11], backward=False, tiles=tiles)
    assert [k["SOFTPLUS"] for _, _, k in spy.launches] == [1, 2]
    for i in (0, 1):
        assert _rel(res[True][i], res[False][i]) <= 1e-5
