"""The mixers' fused multi-direction paths against their composed versions (the official computation).

`Mamba.mix` (Vim's bidirectional mixer, SiMBA's one-direction mixer) and `SS2D.core` (VMamba's four
directions) call `selective_scan` once with visiting orders; `Mamba.mix_composed` and
`cross_selective_scan_2d` run one call per direction over flipped / cross-scanned copies. Outputs and
every parameter's gradient must agree, in float64, on odd token counts and batch 1.
"""

from __future__ import annotations

import pytest
import torch

from vssm.kernels.selective_scan.cases import rel_error
from vssm.mamba import Mamba
from vssm.ss2d import SS2D


def _check(module, x):
    torch.manual_seed(1)
    x = x.detach().requires_grad_(True)
    params = [p for p in module.parameters() if p.requires_grad]
    module.composed = False
    y_f = module(x)
    dy = torch.randn_like(y_f)
    g_f = torch.autograd.grad(y_f, [x, *params], dy)
    module.composed = True
    y_c = module(x)
    g_c = torch.autograd.grad(y_c, [x, *params], dy)
    module.composed = False
    assert rel_error(y_f, y_c) < 1e-12
    names = ["input"] + [n for n, p in module.named_parameters() if p.requires_grad]
    for name, a, b in zip(names, g_f, g_c):
        assert rel_error(a, b) < 1e-11, name


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("conv_bias", [True, False])
@pytest.mark.parametrize("tokens", [False, True])
@pytest.mark.parametrize("proj_dtype", [None, torch.float64, torch.float32])
def test_direction_params_one_node_same_gradients(bidirectional, conv_bias, tokens, proj_dtype):
    """The stacked parameters of the fused path in training are one autograd node (`_DirectionParams`) whose
    outputs and every parameter's gradient equal those of the same stacking recorded op by op
    (`stack_directions` under autograd), bit for bit; parameters that do not require grad get none."""
    from vssm.mamba import _DirectionParams, stack_directions

    torch.manual_seed(0)
    m = Mamba(8, d_state=3, d_conv=4, bidirectional=bidirectional, conv_bias=conv_bias, dtype=torch.float64)
    m.dt_proj.weight.requires_grad_(False)  # a frozen one: no gradient computed for it
    params = m._direction_inputs()
    outs = m._direction_params(tokens, proj_dtype)
    nodes = {type(o.grad_fn) for o in outs if o is not None and o.requires_grad}
    assert nodes == {_DirectionParams._backward_cls}, nodes
    ref = stack_directions(params, tokens, proj_dtype)
    assert [o is None for o in outs] == [r is None for r in ref]
    assert len({r.grad_fn for r in ref if r is not None}) > 1  # the composed recording: a node per output
    pairs = [(o, r) for o, r in zip(outs, ref) if o is not None]
    for o, r in pairs:
        assert o.dtype == r.dtype and o.shape == r.shape and o.stride() == r.stride()
        assert o.requires_grad == r.requires_grad  # the frozen dt_proj weight's stack is a constant either way
        torch.testing.assert_close(o, r, rtol=0, atol=0)
    if proj_dtype is not None:  # w_dt is a constant when every direction's dt_proj weight is frozen
        assert outs[6].requires_grad == bidirectional and outs[5].requires_grad
    pairs = [(o, r) for o, r in pairs if r.requires_grad]
    grads_out = [torch.randn_like(o) for o, _ in pairs]
    wanted = [p for p in params if p is not None and p.requires_grad]
    got = torch.autograd.grad([o for o, _ in pairs], wanted, grads_out, allow_unused=True)
    want = torch.autograd.grad([r for _, r in pairs], wanted, grads_out, allow_unused=True)
    for p, a, b in zip(wanted, got, want):
        if b is None:
            assert a is None
            continue
        assert a.dtype == p.dtype and a.shape == p.shape
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # one output used downstream, the others not (None gradients reach the node): d(sum A)/d(A_log) = A
    A = m._direction_params(tokens, proj_dtype)[2]
    got = torch.autograd.grad(A.sum(), [m.A_log])[0]
    torch.testing.assert_close(got, A[0].detach(), rtol=0, atol=0)


_KINDS = ("conv weight", "conv bias", "x_proj weight", "dt_proj weight", "dt_proj bias", "A_log", "D")


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("frozen", [f"only {k}" for k in _KINDS] + [f"all but {k}" for k in _KINDS])
def test_direction_params_frozen_parameters(bidirectional, frozen):
    """Each kind of parameter frozen in every direction, or every kind but one: the stacked results that come only
    from frozen parameters are constants and every trainable parameter gets the recorded stacking's gradient, so a
    wrong output-to-parameter map in `_DirectionParams` cannot drop a gradient silently."""
    from vssm.mamba import stack_directions

    torch.manual_seed(0)
    m = Mamba(8, d_state=3, bidirectional=bidirectional, dtype=torch.float64)
    params = m._direction_inputs()
    how, kind = frozen.split(" ", 1)
    j = _KINDS.index(kind.removeprefix("but "))
    for i, p in enumerate(params):
        if (i % 7 == j) == (how == "only"):
            p.requires_grad_(False)
    outs = m._direction_params(False, torch.float32)
    ref = stack_directions(params, False, torch.float32)
    assert [o.requires_grad for o in outs] == [r.requires_grad for r in ref]
    pairs = [(o, r) for o, r in zip(outs, ref) if r.requires_grad]
    grads_out = [torch.randn_like(o) for o, _ in pairs]
    wanted = [p for p in params if p.requires_grad]
    got = torch.autograd.grad([o for o, _ in pairs], wanted, grads_out)
    want = torch.autograd.grad([r for _, r in pairs], wanted, grads_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_direction_params_values_and_second_derivatives():
    """The stacked values against their definition (direction 1's taps mirrored, A = -exp(A_log) with E contiguous
    in the walking layout), and second derivatives through the node (gradgradcheck, float64)."""
    from vssm.mamba import _DirectionParams

    torch.manual_seed(0)
    m = Mamba(4, d_state=2, d_conv=3, bidirectional=True).double()
    taps, conv_bias, A, D, delta_bias, w_x, w_dt = m._direction_params(True, torch.float64)
    torch.testing.assert_close(taps[0], m.conv1d.weight[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(taps[1], m.conv1d_b.weight[:, 0].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(A, -torch.exp(torch.stack([m.A_log, m.A_b_log])), rtol=0, atol=0)
    assert A.stride(1) == 1  # tokens: channels contiguous
    torch.testing.assert_close(D, torch.stack([m.D, m.D_b]), rtol=0, atol=0)
    torch.testing.assert_close(delta_bias, torch.stack([m.dt_proj.bias, m.dt_proj_b.bias]), rtol=0, atol=0)
    torch.testing.assert_close(w_dt, torch.stack([m.dt_proj.weight, m.dt_proj_b.weight]), rtol=0, atol=0)
    params = tuple(p.detach().clone().requires_grad_(True) for p in m._direction_inputs())

    def f(*ps):
        return _DirectionParams.apply(False, torch.float64, *ps)

    assert torch.autograd.gradcheck(f, params)
    assert torch.autograd.gradgradcheck(f, params)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("batch,L", [(1, 1), (1, 13), (2, 29)])
def test_mamba_fused_equals_composed(bidirectional, batch, L):
    torch.manual_seed(0)
    m = Mamba(16, d_state=8, d_conv=4, bidirectional=bidirectional).double()
    _check(m, torch.randn(batch, L, 16, dtype=torch.float64))


def test_mamba_fused_no_conv_bias_d_conv_2():
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, d_conv=2, conv_bias=False, bidirectional=True).double()
    _check(m, torch.randn(2, 9, 8, dtype=torch.float64))


@pytest.mark.parametrize("gate,d_state,d_conv", [(False, 1, 3), (True, 16, 3), (False, 4, 1)])
@pytest.mark.parametrize("batch,H,W", [(1, 5, 7), (2, 3, 3), (1, 1, 1)])
def test_ss2d_fused_equals_composed(gate, d_state, d_conv, batch, H, W):
    torch.manual_seed(0)
    m = SS2D(8, d_state=d_state, ssm_ratio=2.0, d_conv=d_conv, gate=gate).double()
    _check(m, torch.randn(batch, H, W, 8, dtype=torch.float64))


def test_fused_paths_call_the_op_once(monkeypatch):
    """One selective_scan call per mixer, whatever the number of directions."""
    import vssm.mamba
    import vssm.ss2d

    calls = []
    for mod in (vssm.mamba, vssm.ss2d):

        def spy(*a, _orig=mod.selective_scan, **k):
            calls.append(k.get("orders"))
            return _orig(*a, **k)

        monkeypatch.setattr(mod, "selective_scan", spy)
    Mamba(8, bidirectional=True)(torch.randn(1, 5, 8))
    ss2d = SS2D(8, d_state=1)
    ss2d.function_core = False
    ss2d(torch.randn(1, 3, 4, 8))
    assert calls == [["natural", "reverse"], ["rows", "cols", "rows_reverse", "cols_reverse"]]
    # SS2D's one-node core (the default) prepares one call of the op's forward with the four orders
    prepared, ran = [], []
    monkeypatch.setattr(vssm.ss2d, "prepare", lambda *a, _orig=vssm.ss2d.prepare, **k: prepared.append(a[9]) or _orig(*a, **k))
    monkeypatch.setattr(vssm.ss2d, "_scan_fwd_impl",
                        lambda *a, _orig=vssm.ss2d._scan_fwd_impl: ran.append(1) or _orig(*a))
    ss2d.function_core = None
    ss2d(torch.randn(1, 3, 4, 8, requires_grad=True))
    assert len(calls) == 2 and ran == [1] and [list(o) for o in prepared] == [calls[1]]


@pytest.fixture
def conv_op_path(monkeypatch):
    """The path the modules take on CUDA (the depthwise conv op over token-major tensors), on the CPU."""
    import vssm.mamba
    import vssm.models.mambavision

    for mod in (vssm.mamba, vssm.models.mambavision):
        monkeypatch.setattr(mod, "has_fast_kernel", lambda x: isinstance(x, torch.Tensor))


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("batch,L,d_conv,conv_bias", [(1, 1, 4, True), (2, 13, 4, True), (1, 9, 2, False)])
def test_mamba_conv_op_path_equals_composed(conv_op_path, bidirectional, batch, L, d_conv, conv_bias):
    torch.manual_seed(0)
    m = Mamba(16, d_state=8, d_conv=d_conv, conv_bias=conv_bias, bidirectional=bidirectional).double()
    _check(m, torch.randn(batch, L, 16, dtype=torch.float64))


@pytest.mark.parametrize("d_conv,conv_bias", [(3, False), (4, True)])
def test_mambavision_mixer_conv_op_path(monkeypatch, d_conv, conv_bias):
    """MambaVisionMixer's fast path: inference through the conv op ("same" offsets) equals the F.conv1d
    path; with a backward to follow the mixer keeps F.conv1d (measured faster there), so gradients are
    those of the F.conv1d path whatever the device."""
    import vssm.models.mambavision as mv

    torch.manual_seed(0)
    m = mv.MambaVisionMixer(16, d_state=4, d_conv=d_conv, conv_bias=conv_bias).double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    with torch.no_grad():
        y_ref = m(x)
    calls = []

    def spy(*a, _orig=mv.depthwise_conv1d, **k):
        calls.append(a[0].shape)
        return _orig(*a, **k)

    monkeypatch.setattr(mv, "depthwise_conv1d", spy)
    monkeypatch.setattr(mv, "has_fast_kernel", lambda t: isinstance(t, torch.Tensor))
    with torch.no_grad():
        y = m(x)
    assert calls == [torch.Size([2, 11, m.d_inner])]
    assert rel_error(y, y_ref) < 1e-12
    xg = x.clone().requires_grad_(True)
    m(xg).sum().backward()
    assert len(calls) == 1  # training: F.conv1d


@pytest.mark.parametrize("walks", [True, False])
def test_mamba_inference_layout_follows_the_walking_forward(conv_op_path, monkeypatch, walks):
    """Without a backward to follow, the mixer asks for the conv op's token-major output where the scan's
    forward walks (`projected.scan_walks`), channel-major otherwise and whenever a gradient is needed; the
    result is the composed one in every case."""
    import vssm.mamba as mm

    torch.manual_seed(0)
    m = Mamba(16, d_state=8, bidirectional=True).double()
    x = torch.randn(3, 11, 16, dtype=torch.float64)
    asked, layouts = [], []

    def conv_spy(*a, _orig=mm.depthwise_conv1d, **k):
        layouts.append(k["channel_major"])
        return _orig(*a, **k)

    monkeypatch.setattr(mm, "scan_walks", lambda *a: asked.append(a) or walks)
    monkeypatch.setattr(mm, "depthwise_conv1d", conv_spy)
    with torch.no_grad():
        y = m(x)
        m.composed = True
        y_ref = m(x)
        m.composed = False
    assert asked == [(3, m.d_inner, 8, 11)] and layouts == [not walks]
    assert rel_error(y, y_ref) < 1e-12
    m(x).sum().backward()  # parameters need gradients: channel-major, scan_walks not asked
    assert layouts == [not walks, True] and len(asked) == 1


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("conv_bias", [True, False])
@pytest.mark.parametrize("proj_dtype", [None, torch.bfloat16, torch.float32])
def test_stack_flat_equals_stacking(bidirectional, conv_bias, proj_dtype):
    """`_stack_flat` (the training forward's five launches) gives `stack_directions`'s values, dtypes, shapes and
    strides bit for bit, and declines (None) parameters of mixed dtypes or half precision, or non-contiguous ones."""
    from vssm.mamba import _stack_flat, stack_directions

    torch.manual_seed(0)
    m = Mamba(8, d_state=3, d_conv=4, bidirectional=bidirectional, conv_bias=conv_bias)
    params = m._direction_inputs()
    with torch.no_grad():
        got, want = _stack_flat(params, proj_dtype), stack_directions(params, False, proj_dtype)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if w is not None:
            assert g.dtype == w.dtype and g.shape == w.shape and g.stride() == w.stride()
            torch.testing.assert_close(g, w, rtol=0, atol=0)
    assert _stack_flat([p.bfloat16() if p is not None else None for p in params], proj_dtype) is None
    mixed = list(params)
    mixed[6] = mixed[6].double()
    assert _stack_flat(mixed, proj_dtype) is None
    strided = list(params)
    strided[5] = torch.randn(3, 16).t()  # an A_log (16, 3) that is a transposed view
    assert _stack_flat(strided, proj_dtype) is None


_PACK = r"""
import json, torch
from vssm.kernels.selective_scan.triton_pack import pack_directions
from vssm.mamba import Mamba, stack_directions


def special(m, dtype):
    # values a copy or a cast can get wrong: -0.0, infinities, NaN, subnormals, exact bfloat16 ties (low 16 bits
    # 0x8000, both parities of the kept bit) and their neighbours
    with torch.no_grad():
        if dtype == torch.float32:
            ties = torch.tensor([0x3F808000, 0x3F818000, 0x3F808001, 0x3F817FFF, 0xBF808000, 0xBF818000,
                                 0x00000001, 0x00210000, 0x7F7FFFFF], dtype=torch.int64).to(torch.int32)
            vals = torch.cat([ties.view(torch.float32), torch.tensor([-0.0, float("inf"), -float("inf"), float("nan"),
                                                                      3e-39, -1e-40])])
        else:
            vals = torch.tensor([-0.0, float("inf"), -float("inf"), float("nan"), 1e-310, 1.0 + 2 ** -8],
                                dtype=torch.float64)
        for w in (m.x_proj.weight, m.dt_proj.weight, m.D, m.conv1d.weight):
            w.view(-1)[: len(vals)] = vals.to(w.dtype)


def same(g, w):
    # equal as bits where the dtype has an integer twin (NaN payloads aside: NaN against NaN), else exactly
    if g.dtype != w.dtype or g.shape != w.shape or g.stride() != w.stride():
        return False
    nan = torch.isnan(g) | torch.isnan(w)
    if not torch.equal(torch.isnan(g), torch.isnan(w)):
        return False
    twin = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16,
            torch.float16: torch.int16}[g.dtype]
    return torch.equal(g.view(twin)[~nan], w.view(twin)[~nan])


rows = []
for dtype in (torch.float32, torch.float64):
    for bidirectional in (True, False):
        for conv_bias in (True, False):
            for proj in (None, torch.bfloat16, torch.float16, dtype):
                torch.manual_seed(0)
                m = Mamba(12, d_state=5, d_conv=3, dt_rank=3, bidirectional=bidirectional,
                          conv_bias=conv_bias).to(dtype)
                special(m, dtype)
                params = m._direction_inputs()
                with torch.no_grad():
                    got, want = pack_directions(params, proj), stack_directions(params, False, proj)
                if got is None:  # declined: float64 parameters to bfloat16 (rounded from float32 only)
                    rows.append([str(dtype), bidirectional, conv_bias, str(proj),
                                 dtype == torch.float64 and proj == torch.bfloat16])
                    continue
                ok = not (dtype == torch.float64 and proj == torch.bfloat16)
                for i, (g, w) in enumerate(zip(got, want)):
                    if (g is None) != (w is None):
                        ok = False
                    elif w is not None and i == 2:  # A: Triton's exp (numpy's in the interpreter)
                        tol = 1e-6 if dtype == torch.float32 else 1e-14
                        ok = ok and g.dtype == w.dtype and g.stride() == w.stride() and bool(
                            torch.allclose(g, w, rtol=tol, atol=0))
                    elif w is not None:
                        ok = ok and same(g, w)
                rows.append([str(dtype), bidirectional, conv_bias, str(proj), ok])
# declined: bfloat16 parameters, a non-contiguous one, three directions, mixed dtypes
m = Mamba(12, d_state=5, bidirectional=True)
p = m._direction_inputs()
declined = [pack_directions([t.bfloat16() if t is not None else None for t in p], torch.bfloat16) is None,
            pack_directions(p[:5] + [torch.randn(5, 24).t()] + p[6:], torch.bfloat16) is None,
            pack_directions(p + p[:7], torch.bfloat16) is None,
            pack_directions(p[:6] + [p[6].double()] + p[7:], torch.bfloat16) is None]
# the training node takes the kernel under the interpreter: the stacking's outputs and gradients, with parameters
# frozen or not, float64 parameters to float32 weights and float32 parameters to bfloat16 weights
node = []
for dtype, proj in ((torch.float64, torch.float32), (torch.float32, torch.bfloat16)):
    for frozen in (None, "A_b_log", "conv1d.bias"):
        torch.manual_seed(0)
        m = Mamba(12, d_state=5, d_conv=3, bidirectional=True).to(dtype)
        if frozen:
            m.get_parameter(frozen).requires_grad_(False)
        params = m._direction_inputs()
        outs = m._direction_params(False, proj)
        ref = stack_directions(params, False, proj)
        tol = 1e-14 if dtype == torch.float64 else 1e-6
        ok = all(torch.allclose(a, b, rtol=tol, atol=0) and a.requires_grad == b.requires_grad
                 for a, b in zip(outs, ref))
        pairs = [(a, b) for a, b in zip(outs, ref) if b.requires_grad]
        gos = [torch.randn_like(a) for a, _ in pairs]
        wanted = [q for q in params if q.requires_grad]
        g1 = torch.autograd.grad([a for a, _ in pairs], wanted, gos)
        g2 = torch.autograd.grad([b for _, b in pairs], wanted, gos)
        ok = ok and all(torch.allclose(a, b, rtol=tol, atol=0) for a, b in zip(g1, g2))
        node.append([str(dtype), frozen, ok])
print(json.dumps({"rows": rows, "declined": declined, "node": node}))
"""


def test_pack_directions_kernel_interpreted():
    """`triton_pack.pack_directions` (one launch for the training forward's stacked parameters) against
    `stack_directions` under the interpreter, for float32 / float64 parameters, one or two directions, with and
    without conv bias, every projection dtype, with -0.0, infinities, NaN, subnormals and exact bfloat16 ties among
    the values: dtypes, shapes, strides and bits (A within the exponential's rounding); what it declines; and
    `_DirectionParams` taking it, outputs and gradients, with frozen parameters too."""
    from interpreted import run_code

    res = run_code(_PACK, 600)
    bad = [r for r in res["rows"] if not r[-1]]
    assert len(res["rows"]) == 32 and not bad, bad
    assert all(res["declined"]), res["declined"]
    assert len(res["node"]) == 6 and all(r[-1] for r in res["node"]), res["node"]
