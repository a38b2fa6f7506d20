"""The selective-scan op and its chunked reference against the definition (a literal per-step loop)."""

import pytest
import torch
import torch.nn.functional as F

from vssm.kernels import selective_scan
from vssm.kernels.selective_scan import selective_scan_reference


def scan_by_definition(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The S6 recurrence written out step by step in float64 (independent of the library code)."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    batch, dim, L = u.shape
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    G, N = B.shape[1], B.shape[2]
    out = torch.empty(batch, dim, L, dtype=torch.float64)
    last = torch.empty(batch, dim, N, dtype=torch.float64)
    for b in range(batch):
        for d in range(dim):
            g = d // (dim // G)
            h = torch.zeros(N, dtype=torch.float64)
            for t in range(L):
                dt = delta[b, d, t] + (0.0 if delta_bias is None else delta_bias[d].double())
                if delta_softplus:
                    dt = F.softplus(dt)
                h = torch.exp(dt * A[d]) * h + dt * B[b, g, :, t] * u[b, d, t]
                y = (C[b, g, :, t] * h).sum()
                if D is not None:
                    y = y + D[d].double() * u[b, d, t]
                if z is not None:
                    zz = z[b, d, t].double()
                    y = y * zz * torch.sigmoid(zz)
                out[b, d, t] = y
            last[b, d] = h
    return out, last


def make_inputs(batch, dim, L, N, G, dtype=torch.float32, *, z=True, D=True, bias=True, noncontig=False, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(dtype)

    if noncontig:
        # Built transposed then viewed back: same values, non-unit last-dim strides.
        u = rnd(batch, L, dim).transpose(1, 2)
        delta = (rnd(batch, L, dim, scale=0.5) - 1.0).transpose(1, 2)
    else:
        u = rnd(batch, dim, L)
        delta = rnd(batch, dim, L, scale=0.5) - 1.0
    A = -torch.exp(torch.randn(dim, N, generator=gen) * 0.5)
    shape = (batch, G, N, L) if G > 1 or N % 2 else (batch, N, L)  # exercise both B/C layouts
    if noncontig:
        B = rnd(*shape[:-2], L, N).transpose(-1, -2)
        C = rnd(*shape[:-2], L, N).transpose(-1, -2)
    else:
        B, C = rnd(*shape), rnd(*shape)
    return dict(
        u=u,
        delta=delta,
        A=A,
        B=B,
        C=C,
        D=torch.randn(dim, generator=gen) if D else None,
        z=rnd(batch, dim, L) if z else None,
        delta_bias=torch.randn(dim, generator=gen) * 0.5 if bias else None,
    )


GRID = [
    # batch, dim, L, N, G
    (1, 4, 1, 1, 1),
    (2, 8, 7, 16, 1),
    (2, 8, 33, 16, 4),
    (1, 4, 70, 64, 1),
    (2, 8, 131, 1, 4),
]


@pytest.mark.parametrize("shape", GRID, ids=lambda s: "b{}d{}L{}N{}G{}".format(*s))
@pytest.mark.parametrize("options", [(True, True, True, True), (False, False, False, False), (True, False, True, False)],
                         ids=["z-D-bias-softplus", "plain", "z-bias"])
def test_reference_matches_definition(shape, options):
    use_z, use_D, use_bias, softplus = options
    inp = make_inputs(*shape, z=use_z, D=use_D, bias=use_bias, noncontig=shape[2] % 2 == 1)
    if not softplus:  # without softplus the step must be positive for a decaying (finite) scan
        inp["delta"] = inp["delta"].abs() * 0.3
        inp["delta_bias"] = None if inp["delta_bias"] is None else inp["delta_bias"].abs()
    expected, expected_last = scan_by_definition(**inp, delta_softplus=softplus)
    out, last = selective_scan(**inp, delta_softplus=softplus, return_last_state=True, backend="reference")
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert last.shape == expected_last.shape
    scale = expected.abs().max().clamp_min(1e-6)
    assert ((out.double() - expected).abs().max() / scale) < 1e-5
    assert ((last.double() - expected_last).abs().max() / expected_last.abs().max().clamp_min(1e-6)) < 1e-5


def test_reference_bfloat16_inputs():
    inp = make_inputs(2, 8, 45, 16, 2, dtype=torch.bfloat16)
    inp["A"] = inp["A"].float()
    expected, _ = scan_by_definition(**inp, delta_softplus=True)
    out = selective_scan(**inp, delta_softplus=True, backend="reference")
    assert out.dtype == torch.bfloat16
    err = (out.double() - expected).abs().max() / expected.abs().max()
    assert err < 1e-2  # bf16 output rounding (8 bits of mantissa)


def test_reference_strong_decay_and_chunk_sizes():
    # Large dt*|A| forces short chunks; the result must not depend on the chunking.
    inp = make_inputs(2, 4, 50, 16, 1, z=False)
    inp["A"] = inp["A"] * 40
    expected, _ = scan_by_definition(**inp, delta_softplus=True)
    for chunk in (None, 1, 3, 64):
        out = selective_scan_reference(**inp, delta_softplus=True, chunk_size=chunk)
        assert torch.isfinite(out).all()
        assert ((out.double() - expected).abs().max() / expected.abs().max()) < 1e-5, chunk


def test_reference_bounded_memory_grouping_matches():
    inp = make_inputs(1, 4, 300, 4, 1)
    full = selective_scan_reference(**inp, delta_softplus=True)
    grouped = selective_scan_reference(**inp, delta_softplus=True, max_elements=4 * 4 * 16)
    torch.testing.assert_close(full, grouped, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("G,three_d", [(1, True), (2, False)])
def test_gradcheck_every_input(G, three_d):
    gen = torch.Generator().manual_seed(1)
    batch, dim, L, N = 2, 4, 6, 3
    kw = dict(dtype=torch.float64)
    bc_shape = (batch, N, L) if three_d else (batch, G, N, L)
    args = [
        torch.randn(batch, dim, L, generator=gen, **kw),  # u
        torch.randn(batch, dim, L, generator=gen, **kw) * 0.5,  # delta
        -torch.rand(dim, N, generator=gen, **kw) - 0.1,  # A
        torch.randn(*bc_shape, generator=gen, **kw),  # B
        torch.randn(*bc_shape, generator=gen, **kw),  # C
        torch.randn(dim, generator=gen, **kw),  # D
        torch.randn(batch, dim, L, generator=gen, **kw),  # z
        torch.randn(dim, generator=gen, **kw) * 0.3,  # delta_bias
    ]
    args = [a.requires_grad_(True) for a in args]

    def fn(*a):
        out, last = selective_scan(*a, delta_softplus=True, return_last_state=True, backend="reference")
        return out, last

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_match_definition_float32():
    inp = make_inputs(2, 8, 21, 16, 2)
    leaves = {k: (v.detach().clone().double().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    ref_out, ref_last = scan_by_definition(**leaves, delta_softplus=True)
    go = torch.randn_like(ref_out)
    gl = torch.randn_like(ref_last)
    (ref_out * go).sum().add_((ref_last * gl).sum()).backward()
    ours = {k: (v.detach().clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    out, last = selective_scan(**ours, delta_softplus=True, return_last_state=True)
    (out * go.float()).sum().add_((last * gl.float()).sum()).backward()
    for k in ours:
        g, r = ours[k].grad, leaves[k].grad
        assert g is not None, k
        assert ((g.double() - r).abs().max() / r.abs().max()) < 1e-4, k


def test_absent_options_and_last_state_only_loss():
    inp = make_inputs(1, 4, 9, 4, 1, z=False, D=False, bias=False)
    leaves = {k: (v.detach().clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    _, last = selective_scan(**leaves, return_last_state=True)
    last.sum().backward()  # gradient flows through the final state alone
    ref = {k: (v.detach().clone().double().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    scan_by_definition(**ref)[1].sum().backward()
    for k in ("u", "delta", "A", "B"):
        torch.testing.assert_close(leaves[k].grad.double(), ref[k].grad, rtol=1e-4, atol=1e-5)
    # C only reads the output, which the loss does not use
    assert torch.count_nonzero(leaves["C"].grad) == 0
    for k in ("D", "z", "delta_bias"):
        assert leaves[k] is None


def test_torch_compile_fullgraph_matches_eager():
    inp = make_inputs(2, 8, 17, 4, 2)
    w = torch.randn(8)

    def fn(u, delta, A, B, C, D, z, delta_bias):
        y = selective_scan(u * w[:, None], delta, A, B, C, D, z, delta_bias, delta_softplus=True)
        return torch.tanh(y).sum(dim=1)

    eager = fn(**inp)
    compiled = torch.compile(fn, fullgraph=True, backend="inductor")(**inp)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    # autograd through the compiled graph too
    leaves = {k: (v.detach().clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    torch.compile(fn, fullgraph=True, backend="aot_eager")(**leaves).sum().backward()
    assert leaves["B"].grad is not None and torch.isfinite(leaves["B"].grad).all()


def test_env_var_forces_backend(monkeypatch):
    from vssm.kernels import default_backend

    monkeypatch.setenv("VSSM_SCAN_BACKEND", "reference")
    assert default_backend(torch.device("cpu")) == "reference"
    monkeypatch.setenv("VSSM_SCAN_BACKEND", "cuda-magic")
    with pytest.raises(ValueError, match="VSSM_SCAN_BACKEND"):
        default_backend(torch.device("cpu"))
    monkeypatch.delenv("VSSM_SCAN_BACKEND")
    from vssm.kernels.selective_scan.op import _cpu_available

    assert default_backend(torch.device("cpu")) == ("cpu" if _cpu_available() else "reference")


def _bad(**over):
    inp = make_inputs(2, 8, 5, 4, 2)
    inp.update(over)
    return inp


@pytest.mark.parametrize(
    "over,exc,pattern",
    [
        (dict(u=torch.randn(2, 8)), ValueError, r"`u` has shape \(2, 8\), expected 3 dims"),
        (dict(u=torch.randint(0, 3, (2, 8, 5))), TypeError, r"`u` must be a floating tensor"),
        (dict(delta=torch.randn(2, 8, 6)), ValueError, r"`delta` has shape \(2, 8, 6\), expected \(batch, D, L\) = \(2, 8, 5\)"),
        (dict(z=torch.randn(2, 7, 5)), ValueError, r"`z` has shape \(2, 7, 5\)"),
        (dict(A=torch.randn(8)), ValueError, r"`A` has shape \(8\), expected 2 dims"),
        (dict(A=torch.randn(7, 4)), ValueError, r"`A` has shape \(7, 4\), expected \(D, N\) = \(8, 4\)"),
        (dict(B=torch.randn(2, 2, 3, 5)), ValueError, r"`B` has shape \(2, 2, 3, 5\), expected \(batch, G, N, L\) = \(2, 2, 4, 5\)"),
        (dict(B=torch.randn(2, 3, 4, 5), C=torch.randn(2, 3, 4, 5)), ValueError, r"G=3 .* must divide D=8"),
        (dict(C=torch.randn(2, 4, 4, 5)), ValueError, r"`C` has shape \(2, 4, 4, 5\)"),
        (dict(C=torch.randn(2, 4, 5)), ValueError, r"both be 3-D or both 4-D"),
        (dict(B=torch.randn(2, 2, 4)), ValueError, r"`B` has shape \(2, 2, 4\), expected \(batch, N, L\)"),
        (dict(D=torch.randn(4)), ValueError, r"`D` has shape \(4\), expected \(D,\) = \(8\)"),
        (dict(delta_bias=torch.randn(8, 1)), ValueError, r"`delta_bias` has shape \(8, 1\)"),
        (dict(delta_bias=[0.0] * 8), TypeError, r"`delta_bias` must be a torch.Tensor"),
        (dict(delta=torch.randn(2, 8, 5, device="meta")), ValueError, r"`delta` is on meta, expected the device of `u`"),
    ],
)
def test_bad_input_errors(over, exc, pattern):
    with pytest.raises(exc, match=pattern):
        selective_scan(**_bad(**over))


def test_bad_backend_name():
    with pytest.raises(ValueError, match="`backend` must be one of"):
        selective_scan(**_bad(), backend="cuda")


def test_reference_long_sequence_matches_loop():
    # Several chunk groups and channel blocks at L = 3000 against the step-by-step loop in float64.
    from vssm.kernels.selective_scan import selective_scan_naive

    inp = make_inputs(1, 4, 3000, 4, 2)
    exact = selective_scan_naive(**{k: v.double() for k, v in inp.items()}, delta_softplus=True)
    for kw in ({}, dict(max_elements=4 * 64 * 4), dict(cache_elements=3000 * 4)):
        out = selective_scan_reference(**inp, delta_softplus=True, **kw)
        assert ((out.double() - exact).norm() / exact.norm()) < 1e-5, kw


def test_grid_is_exercised():
    # Guards the parametrisation above: L=1, odd L, N in {1, 16, 64}, G in {1, 4}.
    Ls = {s[2] for s in GRID}
    assert 1 in Ls and any(L % 2 for L in Ls)
    assert {1, 16, 64} <= {s[3] for s in GRID} and {1, 4} <= {s[4] for s in GRID}


@pytest.mark.parametrize(
    "chunk,max_elements,cache_elements",
    [(3, 1 << 24, 1 << 18), (4, 2 * 8 * 4 * 16 * 2, 1 << 18), (64, 2 * 8 * 16, 1 << 18), (None, 1 << 24, 2 * 53 * 16 * 2)],
)
def test_reference_backward_across_chunks_and_segments(chunk, max_elements, cache_elements):
    # Chunk, segment and channel-block boundaries must not change the output or any gradient.
    from vssm.kernels.selective_scan import selective_scan_reference_backward

    inp = make_inputs(2, 8, 53, 16, 2)
    leaves = {k: (v.detach().clone().double().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    ref_out, ref_last = scan_by_definition(**leaves, delta_softplus=True)
    gen = torch.Generator().manual_seed(5)
    go = torch.randn(ref_out.shape, generator=gen, dtype=torch.float64)
    gl = torch.randn(ref_last.shape, generator=gen, dtype=torch.float64)
    (ref_out * go).sum().add_((ref_last * gl).sum()).backward()
    kw = dict(chunk_size=chunk, max_elements=max_elements, cache_elements=cache_elements)
    out, last = selective_scan_reference(*inp.values(), delta_softplus=True, return_last_state=True, **kw)
    assert ((out.double() - ref_out).abs().max() / ref_out.abs().max()) < 1e-5
    assert ((last.double() - ref_last).abs().max() / ref_last.abs().max()) < 1e-5
    grads = selective_scan_reference_backward(go.float(), gl.float(), *inp.values(), delta_softplus=True, **kw)
    for name, g in zip(inp, grads):
        r = leaves[name].grad
        assert g.shape == r.shape, name
        assert ((g.double() - r).abs().max() / r.abs().max()) < 1e-4, name


@pytest.mark.parametrize("multi", [False, True], ids=["single", "two_orders_shared_z"])
def test_second_derivatives_reach_the_inputs(multi):
    """create_graph through the reference backward (float64): second derivatives of the plain eager path
    are the finite differences' (gradgradcheck); the normal-form views the forward makes are not what the
    second backward differentiates through."""
    gen = torch.Generator().manual_seed(5)
    batch, dim, L, N = 1, 3, 5, 2
    K = 2 if multi else None

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).requires_grad_(True)

    per = (batch, K, dim, L) if multi else (batch, dim, L)
    args = [rnd(*per), rnd(*per, scale=0.5), (-torch.rand((K, dim, N) if multi else (dim, N), generator=gen,
                                                       dtype=torch.float64) - 0.2).requires_grad_(True),
            rnd(batch, N, L), rnd(batch, N, L), rnd(dim), rnd(batch, dim, L), rnd(dim, scale=0.3)]
    kw = dict(orders=["natural", "reverse"], combine="mean") if multi else {}

    def fn(*a):
        return selective_scan(*a, delta_softplus=True, backend="reference", **kw)

    assert torch.autograd.gradgradcheck(fn, args, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_on_device_of_leaves_cpu_and_meta_tensors_alone():
    """`on_device_of` (the ops' device guard around Triton launches) is a null context off CUDA; the CUDA
    case (tensors on cuda:1, cuda:0 current) is tests/gpu/test_fast_launch_gpu.py's."""
    import contextlib

    from vssm.kernels.launch import on_device_of

    for t in (torch.zeros(1), torch.zeros(1, device="meta")):
        assert isinstance(on_device_of(t), contextlib.nullcontext)
