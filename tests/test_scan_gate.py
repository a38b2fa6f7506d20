"""The shared gate outside the scan (`selective_scan.gate`): out = y * silu(z), dy and dz, on the torch path
and in the Triton kernels under TRITON_INTERPRET=1 (in a child process, as in test_conv1d.py), against
float64 autograd of the same formula; and `projected_scan(backend="triton")` with a shared gate against its
composed form (the gate inside the scan), every gradient."""

from __future__ import annotations

import json
import os

import pytest
import torch
from interpreted import run_as_script

from vssm.kernels.selective_scan.gate import gate_backward, gate_forward

TOL = {"float32": 1e-5, "float16": 3e-3, "bfloat16": 2e-2, "float64": 1e-12}
# name, (batch, D, L), dtype, z layout, y layout, need_dz
GATE_CASES = [
    ("tm_slice_f32", (2, 70, 67), "float32", "token_major_slice", "contiguous", True),
    ("tm_slice_bf16", (3, 65, 129), "bfloat16", "token_major_slice", "contiguous", True),
    ("cm_f32_no_dz", (2, 9, 5), "float32", "contiguous", "token_major", False),
    ("L1", (4, 17, 1), "float32", "token_major_slice", "contiguous", True),
    ("D1", (2, 1, 33), "bfloat16", "contiguous", "contiguous", True),
    ("tm_slice_f16", (2, 33, 40), "float16", "token_major_slice", "contiguous", True),
    # several channel tiles (the kernels' 128) and token tiles per sample
    ("wide_f32", (2, 300, 70), "float32", "token_major_slice", "contiguous", True),
]


def _gate_inputs(shape, dtype, z_layout, y_layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch, dim, L = shape
    dt = getattr(torch, dtype)
    if z_layout == "token_major_slice":  # the gate half of an in_proj output (batch, L, 2D), seen (batch, D, L)
        z = (torch.randn(batch, L, 2 * dim, generator=g) * 2).to(dt)[:, :, dim:].transpose(1, 2)
    else:
        z = (torch.randn(batch, dim, L, generator=g) * 2).to(dt)
    y = torch.randn(batch, dim, L, generator=g).to(dt)
    if y_layout == "token_major":
        y = y.transpose(1, 2).contiguous().transpose(1, 2)
    dout = torch.randn(batch, L, dim, generator=g).to(dt).transpose(1, 2)  # out_proj's input gradient
    return y, z, dout


def _gate_errors(y, z, dout, need_dz, use_triton) -> dict:
    """Relative errors of out, dy, dz against float64 autograd, and whether out / dz are laid out like z."""
    out = gate_forward(y, z, use_triton)
    dy, dz = gate_backward(dout, y, z, need_dz, use_triton)
    y64 = y.double().requires_grad_(True)
    z64 = z.double().requires_grad_(True)
    ref = y64 * torch.nn.functional.silu(z64)
    dy_ref, dz_ref = torch.autograd.grad(ref, [y64, z64], dout.double())

    def err(a, b):
        return float((a.detach().double() - b).abs().max() / b.abs().max().clamp_min(1e-12))

    tm = z.stride(1) == 1 and z.shape[1] > 1
    res = {"out": err(out, ref), "dy": err(dy, dy_ref), "dz": err(dz, dz_ref) if need_dz else 0.0,
           "no_dz": dz is None if not need_dz else True,
           "layout": (out.stride(1) == 1) == tm and out.dtype == y.dtype
           and (dz is None or ((dz.stride(1) == 1) == tm and dz.dtype == z.dtype))
           and dy.dtype == (torch.float64 if y.dtype == torch.float64 else torch.float32)}
    return res


def _projected_inputs(K, dim, L, N, R, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    batch = 2

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    u = rnd(batch, K, dim, L)
    w_x = rnd(K, R + 2 * N, dim, scale=dim ** -0.5)
    w_dt = rnd(K, dim, R, scale=R ** -0.5)
    A = -torch.rand(K, dim, N, generator=g, dtype=torch.float64).add(0.5).float()
    D = rnd(K, dim).float()
    z = rnd(batch, L, 2 * dim)[:, :, dim:].transpose(1, 2)  # token-major, as the mixer's gate
    bias = rnd(K, dim, scale=0.5).float()
    return [u, w_x, w_dt, A, D, z, bias]


def _projected_errors(K, dim, L, N, R, freeze_z=False) -> dict:
    """projected_scan on the Triton kernels (gate outside the scan) against the composed form on the
    reference backend (gate inside the scan), float32, output and every gradient."""
    from vssm.kernels import selective_scan
    from vssm.kernels.selective_scan.projected import project, projected_scan

    tensors = _projected_inputs(K, dim, L, N, R, torch.float32)
    orders = ["natural", "reverse"][:K]
    kw = dict(orders=orders, combine="mean")

    def run(fn):
        leaves = [t.detach().requires_grad_(not (freeze_z and i == 5)) for i, t in enumerate(tensors)]
        out = fn(*leaves)
        dy = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
        return out, torch.autograd.grad(out, [t for t in leaves if t.requires_grad], dy)

    def composed(u, w_x, w_dt, A, D, z, bias):
        delta, B, C = project(u, w_x, w_dt, N)
        return selective_scan(u, delta, A, B, C, D, z, bias, True, backend="reference", **kw)

    out, grads = run(lambda *t: projected_scan(*t, delta_softplus=True, backend="triton", **kw))
    ref, ref_grads = run(composed)
    res = {"out": float((out - ref).abs().max() / ref.abs().max())}
    names = [n for n in ("u", "w_x", "w_dt", "A", "D", "z", "bias") if not (freeze_z and n == "z")]
    assert len(grads) == len(names)
    for name, a, b in zip(names, grads, ref_grads):
        res[name] = float((a - b).abs().max() / b.abs().max())
    res["out_token_major"] = out.stride(1) == 1
    return res


def _poisoned_sample_stays() -> bool:
    """A NaN in one sample's gate leaves every other sample's out, dy and dz bit for bit."""
    y, z, dout = _gate_inputs((3, 40, 37), "float32", "token_major_slice", "contiguous")
    clean = (gate_forward(y, z, True), *gate_backward(dout, y, z, True, True))
    z = z.clone()
    z[0, 3, 5] = float("nan")
    dirty = (gate_forward(y, z, True), *gate_backward(dout, y, z, True, True))
    return all(torch.equal(a[1:], b[1:]) for a, b in zip(clean, dirty)) and bool(dirty[0][0].isnan().any())


def _default_backend_launches() -> dict:
    """With the backend left to the op (None; $VSSM_SCAN_BACKEND=triton here, as CUDA would choose), the
    gate runs on the Triton kernels forward and backward, not on the torch formulas."""
    from vssm.kernels.selective_scan import gate_triton
    from vssm.kernels.selective_scan.projected import projected_scan

    calls = {"launch_forward": 0, "launch_backward": 0}
    originals = {fn: getattr(gate_triton, fn) for fn in calls}
    for fn in calls:
        def spy(*a, _fn=fn):
            calls[_fn] += 1
            return originals[_fn](*a)
        setattr(gate_triton, fn, spy)
    os.environ["VSSM_SCAN_BACKEND"] = "triton"
    leaves = [t.detach().requires_grad_(True) for t in _projected_inputs(2, 8, 9, 4, 2, torch.float32)]
    projected_scan(*leaves, delta_softplus=True, orders=["natural", "reverse"]).sum().backward()
    del os.environ["VSSM_SCAN_BACKEND"]
    for fn, orig in originals.items():
        setattr(gate_triton, fn, orig)
    return calls


def _child() -> dict:
    res = {"default_backend_calls": _default_backend_launches()}
    for name, shape, dtype, zl, yl, need_dz in GATE_CASES:
        res[name] = _gate_errors(*_gate_inputs(shape, dtype, zl, yl), need_dz, True)
    res["poison"] = _poisoned_sample_stays()
    res["projected_K2"] = _projected_errors(2, 8, 37, 4, 2)
    res["projected_K1"] = _projected_errors(1, 6, 11, 16, 3)
    res["projected_K2_frozen_z"] = _projected_errors(2, 8, 37, 4, 2, freeze_z=True)
    return res


if __name__ == "__main__":
    print(json.dumps(_child()))


@pytest.mark.parametrize("case", GATE_CASES + [("f64", (2, 5, 7), "float64", "token_major_slice", "contiguous", True)],
                         ids=lambda c: c[0])
def test_gate_torch_path(case):
    name, shape, dtype, zl, yl, need_dz = case
    res = _gate_errors(*_gate_inputs(shape, dtype, zl, yl), need_dz, False)
    assert res.pop("layout") and res.pop("no_dz")
    assert all(v <= TOL[dtype] for v in res.values()), res


@pytest.fixture(scope="module")
def interpreted():
    return run_as_script(__file__, timeout=600)


@pytest.mark.parametrize("case", GATE_CASES, ids=lambda c: c[0])
def test_gate_triton_interpreter(interpreted, case):
    res = dict(interpreted[case[0]])
    assert res.pop("layout") and res.pop("no_dz")
    assert all(v <= TOL[case[2]] for v in res.values()), res


def test_gate_kernels_run_on_the_default_backend(interpreted):
    assert interpreted["default_backend_calls"] == {"launch_forward": 1, "launch_backward": 1}


def test_gate_poisoned_sample_stays(interpreted):
    assert interpreted["poison"]


@pytest.mark.parametrize("case", ["K2", "K1", "K2_frozen_z"])
def test_projected_triton_shared_gate_equals_composed(interpreted, case):
    res = dict(interpreted[f"projected_{case}"])
    assert res.pop("out_token_major")
    assert all(v < 1e-5 for v in res.values()), res


def _saved_bytes(fn) -> int:
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_projected_shared_gate_layouts_and_kept_output(backend):
    """out is laid out as `selective_scan` lays it out (token-major when u or z is); the ungated output is
    kept only when the gate needs a gradient, and a frozen gate still gives every other gradient."""
    from vssm.kernels import selective_scan
    from vssm.kernels.selective_scan.projected import project, projected_scan

    u, w_x, w_dt, A, D, z, bias = _projected_inputs(2, 8, 13, 4, 2, torch.float64)
    u = u.transpose(2, 3).contiguous().transpose(2, 3)  # token-major u
    z = z.contiguous()  # channel-major gate
    kw = dict(orders=["natural", "reverse"], combine="mean", backend=backend)
    out = projected_scan(u, w_x, w_dt, A, D, z, bias, delta_softplus=True, **kw)
    delta, B, C = project(u, w_x, w_dt, 4)
    ref = selective_scan(u, delta, A, B, C, D, z, bias, True, **kw)
    assert out.stride() == ref.stride() and out.stride(1) == 1
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)

    leaves = [t.detach().requires_grad_(True) for t in (u, w_x, w_dt, A, D, z, bias)]
    frozen = leaves[:5] + [z] + leaves[6:]
    y_bytes = z.numel() * 8

    def run(tensors):
        return lambda: projected_scan(*tensors, delta_softplus=True, **kw)

    assert _saved_bytes(run(frozen)) == _saved_bytes(run(leaves)) - y_bytes
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads_frozen = torch.autograd.grad(run(frozen)(), [t for i, t in enumerate(frozen) if i != 5], g)
    grads_all = torch.autograd.grad(run(leaves)(), [t for i, t in enumerate(leaves) if i != 5], g)
    for a, b in zip(grads_frozen, grads_all):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
