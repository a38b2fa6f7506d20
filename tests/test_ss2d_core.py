"""`SS2D.core` as one autograd node (`function_core`, `vssm.ss2d._Core`) against the composed graph it replaces:
the same outputs and every gradient (float64, CPU bf16 autocast, and the Triton kernels under the interpreter in a
child process), far fewer autograd nodes, and the switch's checks."""

from __future__ import annotations

import copy
import json
import os
import sys

import pytest
import torch

from vssm.kernels.selective_scan.cases import rel_error
from vssm.ss2d import SS2D

CASES = [(False, 1, 3, (2, 3, 5)), (True, 16, 3, (1, 5, 7)), (False, 4, 1, (1, 1, 1)), (False, 1, 3, (1, 4, 4))]
# the interpreted child of `interpreted_results` (two minutes on a 2-core machine) starts when collection ends
START_EARLY = True


def _run(m, x, function_core, dy=None, autocast=None):
    x = x.detach().requires_grad_(True)
    params = [x, *m.parameters()]
    m.function_core = function_core
    if autocast is not None:
        with torch.autocast("cpu", dtype=autocast):
            y = m(x)
    else:
        y = m(x)
    dy = torch.randn_like(y) if dy is None else dy
    return y, torch.autograd.grad(y, params, dy), dy


def _nodes(y) -> list[str]:
    seen, stack = set(), [y.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or n in seen:
            continue
        seen.add(n)
        stack += [f for f, _ in n.next_functions]
    return [type(n).__name__ for n in seen]


@pytest.mark.parametrize("gate,d_state,d_conv,shape", CASES)
def test_function_core_equals_the_graph_float64(gate, d_state, d_conv, shape):
    torch.manual_seed(0)
    m = SS2D(8, d_state=d_state, ssm_ratio=2.0, d_conv=d_conv, gate=gate).double()
    x = torch.randn(*shape, 8, dtype=torch.float64)
    y_ref, g_ref, dy = _run(m, x, False)
    y, g, _ = _run(m, x, True, dy)
    assert rel_error(y, y_ref) < 1e-12
    names = ["input"] + [n for n, _ in m.named_parameters()]
    for name, a, b in zip(names, g, g_ref):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert rel_error(a, b) < 1e-11, name


def test_function_core_equals_the_graph_under_autocast():
    """bf16 autocast (on the CPU): the weights cast as autocast casts them, the same matmuls; every gradient
    back in its parameter's dtype."""
    torch.manual_seed(0)
    m = SS2D(16, d_state=1, ssm_ratio=2.0, d_conv=3)
    x = torch.randn(2, 5, 6, 16)
    y_ref, g_ref, dy = _run(m, x, False, autocast=torch.bfloat16)
    y, g, _ = _run(m, x, True, dy, autocast=torch.bfloat16)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    assert rel_error(y, y_ref) < 1e-3
    _, g64, _ = _run(copy.deepcopy(m).double(), x.double(), False, dy.double())
    for (name, p), a, b, c in zip([("input", x), *m.named_parameters()], g, g_ref, g64):
        assert a.dtype == b.dtype == p.dtype, name
        # the tokens' gradient (and those before them): the four directions' parts are added in float32 and rounded
        # once into the x_proj product (`add_direction_sum`), where the graph rounds their sum to bf16, then the add;
        # both as far from the float64 gradient (bf16 rounding)
        assert rel_error(a, b) < 3e-3, name
        assert rel_error(a.double(), c) < 1.1 * rel_error(b.double(), c) + 1e-4, name


def test_function_core_is_one_node():
    torch.manual_seed(0)
    m = SS2D(8, d_state=1)
    x = torch.randn(1, 3, 4, 8, requires_grad=True)
    m.function_core = False
    graph = _nodes(m(x))
    m.function_core = True
    fused = _nodes(m(x))
    assert fused.count("_CoreBackward") == 1 and "_CoreBackward" not in graph
    for gone in ("SplitWithSizesBackward0", "ExpBackward0", "NegBackward0", "BmmBackward0", "_EagerScanBackward"):
        assert gone in graph and gone not in fused, gone
    assert len(fused) < len(graph) - 20


def test_switch(monkeypatch):
    """None follows $VSSM_SS2D_FUNCTION (default 1); a bad value names the variable; traced calls keep the graph."""
    from vssm import ss2d

    m = SS2D(8, d_state=1)
    x = torch.randn(1, 3, 4, 8, requires_grad=True)
    monkeypatch.delenv("VSSM_SS2D_FUNCTION", raising=False)
    assert m.function_core is None and "_CoreBackward" in _nodes(m(x))
    monkeypatch.setenv("VSSM_SS2D_FUNCTION", "0")
    assert "_CoreBackward" not in _nodes(m(x))
    monkeypatch.setenv("VSSM_SS2D_FUNCTION", "1")
    assert "_CoreBackward" in _nodes(m(x))
    m.function_core = False
    assert "_CoreBackward" not in _nodes(m(x))
    m.function_core = None
    monkeypatch.setenv("VSSM_SS2D_FUNCTION", "yes")
    with pytest.raises(ValueError, match="VSSM_SS2D_FUNCTION"):
        m(x)
    monkeypatch.setenv("VSSM_SS2D_FUNCTION", "1")
    calls = []
    monkeypatch.setattr(ss2d._Core, "apply", lambda *a: calls.append(1))
    traced = torch.jit.trace(m.eval(), torch.randn(1, 3, 4, 8), check_trace=False)
    assert calls == [] and traced(torch.randn(1, 3, 4, 8)).shape == (1, 3, 4, 8)


# ---- the Triton kernels (interpreter, child process)


def _interpreted() -> dict:
    from vssm.kernels.selective_scan import triton_bwd, triton_bwd_n1, triton_fwd

    launched = {"fwd": 0, "bwd": 0}
    def counted(orig, key):
        def spy(*a, **k):
            launched[key] += 1
            return orig(*a, **k)

        return spy

    for mod, name, key in ((triton_fwd, "triton_forward", "fwd"), (triton_bwd, "triton_backward_chunks", "bwd"),
                           (triton_bwd_n1, "triton_backward_walk", "bwd")):
        setattr(mod, name, counted(getattr(mod, name), key))
    res = {"launched": launched}
    for gate, d_state, d_conv, shape in CASES:
        torch.manual_seed(0)
        m = SS2D(8, d_state=d_state, ssm_ratio=2.0, d_conv=d_conv, gate=gate)
        x = torch.randn(*shape, 8)
        y_ref, g_ref, dy = _run(m, x, False)
        y, g, _ = _run(m, x, True, dy)
        key = f"{gate}-{d_state}-{d_conv}-{shape}"
        res[key] = [rel_error(y, y_ref)] + [rel_error(a, b) for a, b in zip(g, g_ref)]
    return res


@pytest.fixture(scope="module")
def interpreted_results():
    from interpreted import run_as_script

    return run_as_script(__file__, timeout=600)


@pytest.mark.parametrize("gate,d_state,d_conv,shape", CASES)
def test_function_core_on_the_triton_kernels(interpreted_results, gate, d_state, d_conv, shape):
    # both paths of every case ran the Triton forward and backward
    assert interpreted_results["launched"] == {"fwd": 2 * len(CASES), "bwd": 2 * len(CASES)}
    errors = interpreted_results[f"{gate}-{d_state}-{d_conv}-{tuple(shape)}"]
    assert max(errors) < 1e-5, errors


if __name__ == "__main__":  # the child: TRITON_INTERPRET=1 (run_as_script), the Triton backend on CPU tensors
    assert os.environ.get("TRITON_INTERPRET") == "1"
    os.environ["VSSM_SCAN_BACKEND"] = "triton"
    sys.stdout.flush()
    print(json.dumps(_interpreted()))
