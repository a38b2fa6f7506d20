"""The Triton selective scan on the CPU, under TRITON_INTERPRET=1, against the float64 reference.

TRITON_INTERPRET is read when `@triton.jit` decorates, and other test modules import vssm first, so
the kernels run in one child process started with the variable set (this file doubles as its
script); each test below checks one case of what the child computed. Tiles are tiny (T = 8 steps)
so a few dozen steps cover several chunks, a partial last chunk, time segments and channel slices.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

# (name, batch, dim, L, N, G, z, D, delta_bias, softplus, dtype, extra)
CASES = [
    ("base", 2, 4, 21, 3, 1, True, True, True, True, "float32", {}),
    ("no_options", 2, 4, 9, 3, 1, False, False, False, False, "float32", {}),
    ("z_only", 1, 4, 17, 2, 1, True, False, False, False, "float32", {}),
    ("softplus_only", 1, 4, 17, 2, 1, False, False, False, True, "float32", {}),
    ("groups", 2, 8, 19, 4, 2, True, True, True, True, "float32", {}),
    ("groups4_n1", 2, 8, 13, 1, 4, True, True, True, True, "float32", {}),
    ("n1_3d_bc", 2, 4, 11, 1, 1, True, True, True, True, "float32", {"B3": True}),
    ("n1_time_major_bwd", 2, 8, 13, 1, 2, True, True, True, True, "float32", {"tiles": {"n1_timelanes": False}}),
    ("n1_reverse_slices", 2, 16, 27, 1, 1, True, True, True, True, "float32", {"reverse": True, "target": 64}),
    ("n16", 1, 8, 12, 16, 1, True, True, True, True, "float32", {}),
    ("n64", 1, 2, 9, 64, 1, True, True, True, True, "float32", {}),
    ("L1", 2, 4, 1, 4, 2, True, True, True, True, "float32", {}),
    ("L_multiple_of_T", 1, 4, 16, 3, 1, True, True, True, True, "float32", {}),
    ("segments_slices", 2, 16, 40, 2, 1, True, True, True, True, "float32", {"target": 64}),
    ("reverse", 2, 4, 19, 3, 1, True, True, True, True, "float32", {"reverse": True, "target": 64}),
    ("noncontiguous", 2, 4, 14, 3, 2, True, True, True, True, "float32", {"noncontig": True}),
    ("bf16", 2, 4, 21, 3, 1, True, True, True, True, "bfloat16", {}),
    ("fp16", 2, 4, 21, 3, 2, True, True, True, True, "float16", {}),
    ("op_autograd", 2, 4, 10, 3, 1, True, True, True, True, "float32", {"via_op": True}),
    ("n1_bf16", 2, 8, 19, 1, 2, True, True, True, True, "bfloat16", {}),
    ("no_prefetch_no_pair", 2, 4, 43, 3, 1, True, True, True, True, "float32",
     {"tiles": {"fwd_prefetch": False, "carry_prefetch": False, "carry_pair": False, "bwd_prefetch": False},
      "target": 8}),
    ("no_prefetch_reverse", 1, 4, 37, 2, 1, True, True, True, True, "float32",
     {"tiles": {"fwd_prefetch": False, "carry_prefetch": False, "carry_pair": False, "bwd_prefetch": False},
      "target": 8, "reverse": True}),
    ("bwd_prefetch_slices", 2, 16, 43, 3, 2, True, True, True, True, "float32", {"target": 64}),
    ("bwd_grouped_tiles", 1, 16, 23, 4, 2, True, True, True, True, "float32",
     {"tiles": {"bwd_dn_grouped": 8, "bwd_warps_grouped": 1}}),
    ("bwd_prefetch_reverse_nz", 1, 16, 37, 4, 1, False, True, False, True, "float32", {"reverse": True}),
    ("fwd_prefetch_n16_bf16", 1, 4, 29, 16, 1, True, True, True, True, "bfloat16", {}),
    ("n1_walk", 2, 16, 29, 1, 2, True, True, True, True, "float32", {"tl_tiles": {"walk": True}}),
    ("n1_walk_no_prefetch_reverse", 2, 8, 21, 1, 1, True, True, True, True, "float32",
     {"tl_tiles": {"walk": True, "walk_prefetch": False}, "reverse": True, "B3": True}),
    ("n1_walk_options_off", 1, 8, 13, 1, 2, False, False, False, True, "float32", {"tl_tiles": {"walk": True}}),
    ("n1_walk_noncontig_bf16", 2, 8, 17, 1, 2, True, True, True, True, "bfloat16",
     {"tl_tiles": {"walk": True}, "noncontig": True}),
    ("n1_walk_L1", 2, 8, 1, 1, 2, True, True, True, True, "float32", {"tl_tiles": {"walk": True}}),
    ("n1_walk_v2_carry_reverse", 2, 8, 29, 1, 2, True, True, True, True, "float32",
     {"tl_tiles": {"walk": True, "v2_carry": True}, "reverse": True}),
    ("float64_reference_path", 1, 4, 9, 3, 1, True, True, True, True, "float64", {}),
    ("empty_L0", 2, 4, 0, 3, 1, True, True, True, True, "float32", {}),
]
TOL = {"float64": 1e-10, "float32": 1e-5, "float16": 5e-3, "bfloat16": 2e-2}
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def _rel(a, b) -> float:
    # the floor keeps gradients that are zero in exact arithmetic (dA at L = 1) from dividing by rounding
    floor = 1e-6 * math.sqrt(max(1, b.numel()))
    return float((a.double() - b).norm() / max(float(b.norm()), floor))


def _run_case(case) -> dict:
    import torch

    from vssm.kernels.selective_scan import (
        selective_scan,
        selective_scan_reference,
        triton_scan,
        triton_scan_timelanes,
    )

    name, batch, dim, L, N, G, has_z, has_D, has_bias, softplus, dtype, extra = case
    dtype = getattr(torch, dtype)
    triton_scan.TILES.update(fwd_T=8, bwd_T=8, fwd_T_n1=8, bwd_T_n1=8, fwd_dn=16, bwd_dn=16, carry_dn=16,
                             target_programs=extra.get("target", 1), fwd_target_programs=extra.get("target", 1),
                             n1_timelanes=True)
    triton_scan.TILES.update(extra.get("tiles", {}))
    triton_scan_timelanes.TILES.update(bwd_T=8, bwd_tile=32, carry_tile=32, target_programs=extra.get("target", 1),
                                       walk=False, walk_tile=32, walk_min_programs=1)
    triton_scan_timelanes.TILES.update(extra.get("tl_tiles", {}))
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(torch.bfloat16).double()
    bc = (batch, N, L) if extra.get("B3") else (batch, G, N, L)
    # without softplus, delta (+ bias) is the step size itself and must be positive
    delta = 0.5 * r(batch, dim, L) - 1.0 if softplus else 0.1 * r(batch, dim, L).abs()
    ins = [r(batch, dim, L), delta, -torch.rand(dim, N, generator=g, dtype=torch.float64) * 3 - 0.1,
           r(*bc), r(*bc), r(dim) if has_D else None, r(batch, dim, L) if has_z else None,
           (0.3 * r(dim) if softplus else 0.05 * r(dim).abs()) if has_bias else None]
    dout, dlast = r(batch, dim, L), r(batch, dim, N)
    reverse = extra.get("reverse", False)

    leaves = [None if t is None else t.clone().requires_grad_(True) for t in ins]
    flip = (lambda t: None if t is None else t.flip(-1)) if reverse else (lambda t: t)
    out, last = selective_scan_reference(flip(leaves[0]), flip(leaves[1]), leaves[2], flip(leaves[3]), flip(leaves[4]),
                                         leaves[5], flip(leaves[6]), leaves[7], softplus, True)
    out = flip(out)
    wrt = [t for t in leaves if t is not None]
    pairs = [(o, gr) for o, gr in ((out, dout), (last, dlast)) if o.requires_grad]  # L = 0: last is constant
    ref = torch.autograd.grad([o for o, _ in pairs], wrt, [gr for _, gr in pairs], allow_unused=True)
    ref_it = iter(ref)
    ref = [None if t is None else next(ref_it) for t in ins]
    ref = [g if g is not None or t is None else torch.zeros_like(t) for g, t in zip(ref, ins)]

    def prep(i, t):
        if t is None:
            return None
        t = t.float() if i == 2 and dtype != torch.float64 else t.to(dtype)
        if extra.get("noncontig") and t.dim() >= 3:
            t = t.transpose(-1, -2).contiguous().transpose(-1, -2)  # time-major storage
        return t

    cast = [prep(i, t) for i, t in enumerate(ins)]
    if extra.get("via_op"):
        leaves2 = [None if t is None else t.requires_grad_(True) for t in cast]
        out2, last2 = selective_scan(*leaves2, delta_softplus=softplus, return_last_state=True, backend="triton")
        grads = torch.autograd.grad((out2, last2), [t for t in leaves2 if t is not None], (dout.to(dtype), dlast.float()))
        grads_it = iter(grads)
        grads = [None if t is None else next(grads_it) for t in leaves2]
    else:
        out2, last2 = triton_scan.triton_forward(*cast, softplus, reverse=reverse)
        grads = triton_scan.triton_backward(dout.to(dtype), dlast.float(), *cast, softplus, reverse=reverse)
    res = {"out": _rel(out2, out), "last": _rel(last2, last), "out_dtype": str(out2.dtype)}
    for n, gr, g2 in zip(NAMES, ref, grads):
        if (gr is None) != (g2 is None):
            res["d" + n] = f"presence mismatch: ref {gr is not None}, triton {g2 is not None}"
        elif gr is not None:
            res["d" + n] = _rel(g2, gr) if tuple(g2.shape) == tuple(gr.shape) else f"shape {tuple(g2.shape)}"
    return res


@pytest.fixture(scope="module")
def interpreted_results():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_triton_interpreted_matches_reference(interpreted_results, case):
    res = interpreted_results[case[0]]
    assert "error" not in res, res.get("error")
    assert res["out_dtype"] == "torch." + case[10]
    tol = TOL[case[10]]
    bad = {k: v for k, v in res.items() if k != "out_dtype" and not (isinstance(v, float) and v <= tol)}
    assert not bad, f"{case[0]}: over {tol:g} (or malformed): {bad}"
    # every gradient of a present input was checked
    present = [n for n, flag in zip(NAMES, (True, True, True, True, True, case[7], case[6], case[8])) if flag]
    assert sorted(k[1:] for k in res if k.startswith("d")) == sorted(present)


def test_triton_backend_on_cpu_without_interpreter_names_the_problem():
    pytest.importorskip("triton")
    import torch

    from vssm.kernels.selective_scan import selective_scan

    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        pytest.skip("the interpreter is on in this process")
    u = torch.randn(1, 2, 5)
    with pytest.raises(ValueError, match="CUDA"):
        selective_scan(u, u, -torch.ones(2, 3), torch.randn(1, 3, 5), torch.randn(1, 3, 5), backend="triton")


if __name__ == "__main__":
    # child process: TRITON_INTERPRET=1 is already in the environment
    import traceback

    results = {}
    for c in CASES:
        try:
            results[c[0]] = _run_case(c)
        except Exception:  # report per case; the parent turns it into that case's failure
            results[c[0]] = {"error": traceback.format_exc()[-2000:]}
    print(json.dumps(results))
