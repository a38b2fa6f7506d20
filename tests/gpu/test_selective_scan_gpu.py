"""GPU tests of the Triton selective scan against the float64 reference (skipped without CUDA).

Tolerances are relative L2 errors ||x - ref|| / ||ref|| of outputs and gradients. Inputs are drawn
once and rounded to bfloat16, so every dtype sees the same values and the float64 reference of those
values is the truth for all of them; what remains is the kernel's rounding: float32 math throughout,
plus the rounding of outputs and gradients stored in the input dtype.
"""

from __future__ import annotations

import math

import pytest
import torch

from vssm.kernels.selective_scan import selective_scan, selective_scan_reference

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TOL = {torch.float32: 2e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def _inputs(batch, dim, L, N, G, *, z=True, D=True, bias=True, seed=0, B3=False, softplus=True):
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g).bfloat16().float()
    u = r(batch, dim, L)
    # without softplus dt = delta + bias must itself be a (small, positive) step size
    delta = 0.5 * r(batch, dim, L) if softplus else 0.05 * r(batch, dim, L).abs()
    bc = (batch, N, L) if B3 else (batch, G, N, L)
    B, C = r(*bc), r(*bc)
    A = -torch.rand(dim, N, device="cuda", generator=g) * N - 0.1
    Dv = r(dim) if D else None
    zz = r(batch, dim, L) if z else None
    # dt in [1e-3, 0.1] after softplus, as Mamba initialises dt_proj.bias
    dt0 = torch.exp(torch.rand(dim, device="cuda", generator=g) * math.log(100.0) + math.log(1e-3))
    db = (dt0 + torch.log(-torch.expm1(-dt0))) if softplus else dt0
    db = db if bias else None
    return [u, delta, A, B, C, Dv, zz, db]


def _reference(ins, softplus):
    leaves = [None if t is None else t.double().requires_grad_(True) for t in ins]
    out, last = selective_scan_reference(*leaves, softplus, True)
    g = torch.Generator(device="cuda").manual_seed(123)
    dout = torch.randn(out.shape, device="cuda", generator=g).bfloat16().double()
    dlast = torch.randn(last.shape, device="cuda", generator=g).double()
    wrt = [t for t in leaves if t is not None]
    grads = iter(torch.autograd.grad((out, last), wrt, (dout, dlast)))
    ref_grads = [None if t is None else next(grads) for t in leaves]
    return out.detach(), last.detach(), dout, dlast, ref_grads


def _triton(ins, softplus, dtype, dout, dlast, A_fp32=True):
    cast = [None if t is None else t.detach().to(dtype).requires_grad_(True) for t in ins]
    if A_fp32:
        cast[2] = ins[2].detach().clone().requires_grad_(True)
    out, last = selective_scan(*cast, delta_softplus=softplus, return_last_state=True, backend="triton")
    wrt = [t for t in cast if t is not None]
    grads = iter(torch.autograd.grad((out, last), wrt, (dout.to(dtype), dlast.float())))
    return out, last, [None if t is None else next(grads) for t in cast]


def _rel(a, b):
    # The floor turns the check absolute (RMS error <= tol * 1e-3) for gradients whose exact value is
    # near zero, as dA at L = 1 (no earlier state: every term is 0, the kernel returns rounding).
    floor = 1e-3 * math.sqrt(max(1, b.numel()))
    return float((a.double() - b).norm() / max(float(b.norm()), floor))


def _compare(ins, softplus, dtypes, label, ref=None):
    out_r, last_r, dout, dlast, grads_r = ref if ref is not None else _reference(ins, softplus)
    for dtype in dtypes:
        out, last, grads = _triton(ins, softplus, dtype, dout, dlast)
        tol = TOL[dtype]
        assert out.dtype == dtype and last.dtype == torch.float32
        assert torch.isfinite(out).all() and torch.isfinite(last).all(), f"{label} {dtype}: non-finite output"
        errs = {"out": _rel(out, out_r), "last": _rel(last, last_r)}
        for name, g, gr in zip(NAMES, grads, grads_r):
            if gr is None:
                assert g is None
                continue
            assert torch.isfinite(g).all(), f"{label} {dtype}: non-finite d{name}"
            errs["d" + name] = _rel(g, gr)
        bad = {k: v for k, v in errs.items() if not v <= tol}
        assert not bad, f"{label} {dtype}: errors over {tol:g}: {bad}"


@pytest.mark.parametrize("L", [1, 7, 197, 2048, 2049, 6085, 16384])
def test_lengths_states_groups(L):
    for i, (N, G) in enumerate([(1, 1), (16, 4), (64, 1), (16, 1), (1, 4), (64, 4)]):
        ins = _inputs(2, 32, L, N, G, D=i % 2 == 0, bias=i % 3 != 0, seed=L + i, B3=(G == 1 and i == 0))
        dtypes = (torch.float32, torch.bfloat16) if L == 16384 else (torch.float32,)
        _compare(ins, True, dtypes, f"L={L} N={N} G={G}")


@pytest.mark.parametrize("L", [1, 7, 2049, 16384])
def test_n1_walking_backward_lengths(L, monkeypatch):
    # the N = 1 chunk-walking backward takes over from 264 programs; force it on small batches here
    from vssm.kernels.selective_scan import triton_scan_timelanes

    monkeypatch.setitem(triton_scan_timelanes.TILES, "walk_min_programs", 1)
    for i, G in enumerate((1, 4)):
        ins = _inputs(2, 64, L, 1, G, D=i == 0, bias=i == 1, seed=3 * L + i, B3=(G == 1))
        _compare(ins, True, (torch.float32, torch.bfloat16), f"walk L={L} G={G}")


@pytest.mark.parametrize("z,softplus", [(False, False), (False, True), (True, False)])
def test_options(z, softplus):
    ins = _inputs(3, 48, 300, 16, 2, z=z, seed=7, softplus=softplus)
    _compare(ins, softplus, (torch.float32, torch.float16), f"z={z} softplus={softplus}")


def test_noncontiguous_inputs():
    batch, dim, L, N, G = 2, 64, 1000, 16, 2
    ins = _inputs(batch, dim, L, N, G, seed=3)
    # token-major (batch, L, D) storage viewed as (batch, D, L); B/C stored (batch, L, G, N)
    tm = lambda t: t.transpose(1, 2).contiguous().transpose(1, 2)
    bc = lambda t: t.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    nc = [tm(ins[0]), tm(ins[1]), ins[2], bc(ins[3]), bc(ins[4]), ins[5], tm(ins[6]), ins[7]]
    assert not nc[0].is_contiguous() and not nc[3].is_contiguous()
    ref = _reference(ins, True)
    for dtype in (torch.float32, torch.bfloat16):
        cast = [None if t is None else t.to(dtype) for t in nc]
        cast[2] = nc[2]
        _compare(cast, True, (dtype,), f"non-contiguous {dtype}", ref=ref)
    # a strided slice of a wider tensor (every other token)
    wide = torch.randn(batch, dim, 2 * L, device="cuda").bfloat16().float()
    sl = [wide[..., ::2], *ins[1:]]
    _compare(sl, True, (torch.float32,), "strided u")


@pytest.mark.parametrize("N,G", [(16, 1), (1, 4)])
def test_deterministic(N, G):
    ins = _inputs(8, 256, 6085, N, G, seed=11)  # N = 1: 512 programs, the walking backward
    ins = [t.requires_grad_(True) if t is not None else None for t in ins]
    runs = []
    for _ in range(2):
        out = selective_scan(*ins, delta_softplus=True, backend="triton")
        grads = torch.autograd.grad(out, [t for t in ins if t is not None], torch.ones_like(out))
        runs.append([out, *grads])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_reverse_flag():
    from vssm.kernels.selective_scan.triton_scan import triton_backward, triton_forward

    ins = _inputs(2, 32, 777, 16, 2, seed=5)
    flip = lambda t: None if t is None else t.flip(-1)
    fl = [flip(ins[0]), flip(ins[1]), ins[2], flip(ins[3]), flip(ins[4]), ins[5], flip(ins[6]), ins[7]]
    out_r, last_r, dout, dlast, grads_r = _reference(fl, True)
    out, last = triton_forward(*ins, True, reverse=True)
    assert _rel(out.flip(-1), out_r) < 1e-4 and _rel(last, last_r) < 1e-4
    grads = triton_backward(dout.flip(-1).float().contiguous(), dlast.float(), *ins, True, reverse=True)
    for name, g, gr in zip(NAMES, grads, grads_r):
        g = g.flip(-1) if name in ("u", "delta", "z", "B", "C") else g
        assert _rel(g, gr) < 1e-4, name


def test_torch_compile_fullgraph():
    ins = _inputs(2, 64, 500, 16, 1, seed=9)
    leaves = [t.requires_grad_(True) if t is not None else None for t in ins]

    def f(u, delta, A, B, C, D, z, db):
        return selective_scan(u, delta, A, B, C, D, z, db, delta_softplus=True, backend="triton").sum()

    compiled = torch.compile(f, fullgraph=True)
    torch._dynamo.reset()
    eager = f(*leaves)
    ge = torch.autograd.grad(eager, leaves)
    comp = compiled(*leaves)
    gc = torch.autograd.grad(comp, leaves)
    # the same kernels run in both; only the final sum may be reduced in another order
    assert torch.allclose(comp, eager, rtol=1e-4, atol=1e-3)
    for a, b in zip(gc, ge):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


BENCH_SHAPES = {
    "vim_s_224": (128, 768, 197, 16, 1),
    "vim_ti_1248": (8, 384, 6085, 16, 1),
    "vmamba_t_s1": (128, 768, 3136, 1, 4),
    "n16_g4": (64, 384, 3136, 16, 4),
}


@pytest.mark.parametrize("name", list(BENCH_SHAPES))
def test_benchmark_shapes_all_dtypes(name):
    # real D, L, N, G; batch cut to 4 so the float64 reference fits beside parallel test workers
    batch, dim, L, N, G = BENCH_SHAPES[name]
    ins = _inputs(min(batch, 4), dim, L, N, G)
    _compare(ins, True, (torch.float32, torch.bfloat16, torch.float16), name)
