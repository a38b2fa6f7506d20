"""`vssm.param_cache.derived`: tensors built from parameters are reused between calls that record no gradient,
and rebuilt whenever a parameter they come from changed (in place, replaced, reloaded, converted) or a graph,
a trace or a dispatch mode needs the build."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch

import vssm.mamba as mm
import vssm.models.mambavision as mv
import vssm.ss2d as ss
from vssm import param_cache
from vssm.mamba import Mamba
from vssm.ss2d import SS2D


@pytest.fixture
def builds(monkeypatch):
    """Counts the builds `derived` runs for the mixers (not the reuses)."""
    count = Counter()

    def counting(module, key, params, build, _orig=param_cache.derived):
        def counted():
            count["n"] += 1
            return build()

        return _orig(module, key, params, counted)

    for mod in (mm, mv, ss):
        monkeypatch.setattr(mod, "derived", counting)
    return count


def _fresh_copy(m):
    """The same weights in a module that has never run (so nothing of it is reused)."""
    other = copy.deepcopy(m)
    param_cache.clear(other)
    return other


def _modules():
    torch.manual_seed(0)
    return [
        (Mamba(16, d_state=4, bidirectional=True), torch.randn(2, 9, 16)),
        (Mamba(16, d_state=4, bidirectional=False, conv_bias=False), torch.randn(1, 5, 16)),
        (mv.MambaVisionMixer(16, d_state=4, conv_bias=True), torch.randn(2, 7, 16)),
        (SS2D(8, d_state=2), torch.randn(2, 3, 5, 8)),
    ]


@pytest.mark.parametrize("fast", [False, True], ids=["cpu_path", "cuda_path"])
@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_reused_without_gradients_and_rebuilt_after_changes(builds, monkeypatch, fast, index):
    if fast:  # the CUDA path on the CPU: the conv op, the stacked projection weights of the projected scan
        for mod in (mm, mv):
            monkeypatch.setattr(mod, "has_fast_kernel", lambda t: isinstance(t, torch.Tensor))
    m, x = _modules()[index]
    m.eval()
    with torch.no_grad():
        y0 = m(x)
        first = builds["n"]
        assert first >= 1
        assert torch.equal(m(x), y0) and builds["n"] == first  # reused

        # in place (an optimizer step, torch.nn.init): the version counter moves
        name, p = next((n, p) for n, p in m.named_parameters() if "A" in n and "log" in n)
        p.add_(0.5)
        y1 = m(x)
        assert builds["n"] > first and not torch.allclose(y1, y0)
        torch.testing.assert_close(y1, _fresh_copy(m)(x), rtol=0, atol=0)
        for n, q in m.named_parameters():  # the other parameters the built tensors come from
            if "bias" in n or "weight" in n and "proj" in n and "out" not in n and "in_" not in n:
                q.mul_(0.9)
                torch.testing.assert_close(m(x), _fresh_copy(m)(x), rtol=0, atol=0, msg=n)

        # reloaded
        other = _modules()[index][0].eval()
        m.load_state_dict(other.state_dict())
        torch.testing.assert_close(m(x), other(x), rtol=0, atol=0)

        # replaced: another dtype, then assigned data
        m.double()
        y64 = m(x.double())
        assert y64.dtype == torch.float64
        torch.testing.assert_close(y64, other.double()(x.double()), rtol=0, atol=0)
        p = dict(m.named_parameters())[name]
        p.data = p.data * 2
        torch.testing.assert_close(m(x.double()), _fresh_copy(m)(x.double()), rtol=0, atol=0)


def test_gradients_build_every_call_and_reach_the_parameters(builds):
    m, x = _modules()[0]
    A_log = m.A_log
    for i in (1, 2):
        m(x).sum().backward()
        assert builds["n"] == i  # every direction's parameters, stacked once per call
    assert A_log.grad is not None and A_log.grad.abs().sum() > 0
    # frozen parameters: nothing to record, so reused; the input still gets its gradient
    for p in m.parameters():
        p.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    m(xg).sum().backward()
    n = builds["n"]
    m(xg).sum().backward()
    assert builds["n"] == n and xg.grad is not None


def test_tracing_and_dispatch_modes_build(builds):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    m, x = _modules()[0]
    m.eval()
    with torch.no_grad():
        ref = m(x)
        n = builds["n"]
        with Passthrough():
            torch.testing.assert_close(m(x), ref)
        assert builds["n"] > n
        n = builds["n"]
        traced = torch.jit.trace(m, x, check_trace=False)
        assert builds["n"] > n  # the trace records the build: later parameter changes reach it
        torch.testing.assert_close(traced(x), ref)


def test_inference_mode_then_no_grad_and_copies_keep_their_own():
    m, x = _modules()[0]
    m.eval()
    with torch.inference_mode():
        y = m(x)
    with torch.no_grad():
        torch.testing.assert_close(m(x), y, rtol=0, atol=0)
        twin = copy.deepcopy(m)
        with torch.no_grad():
            twin.A_log.zero_()
        assert not torch.allclose(twin(x), m(x))
        torch.testing.assert_close(m(x), y, rtol=0, atol=0)
    param_cache.clear()
    with torch.no_grad():
        torch.testing.assert_close(m(x), y, rtol=0, atol=0)


@pytest.mark.parametrize("function_core", [True, False])
def test_ss2d_under_autocast_reuses_its_cast_weights(builds, function_core):
    """SS2D's one-node core takes its weights cast to the autocast dtype: kept per dtype, rebuilt after a change."""
    m, x = _modules()[3]
    m.eval().function_core = function_core
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y0 = m(x)
        n = builds["n"]
        assert torch.equal(m(x), y0) and builds["n"] == n
        m.x_proj_weight.mul_(0.5)
        y1 = m(x)
        # the composed core leaves the weights' casts to autocast: nothing of it comes from x_proj_weight
        assert not torch.equal(y1, y0) and (builds["n"] > n) == function_core
        torch.testing.assert_close(y1, _fresh_copy(m)(x), rtol=0, atol=0)
    with torch.no_grad():  # float32 again: its own entry
        torch.testing.assert_close(m(x), _fresh_copy(m)(x), rtol=0, atol=0)


def test_built_in_inference_mode_then_frozen_training():
    """Frozen parameters after an inference_mode evaluation: the tensors built there are inference tensors, which
    autograd cannot save; a step whose input needs a gradient must not receive them."""
    m, x = _modules()[0]
    for p in m.parameters():
        p.requires_grad_(False)
    with torch.inference_mode():
        y = m(x)
    xg = x.clone().requires_grad_(True)
    out = m(xg)
    out.sum().backward()
    assert xg.grad is not None and torch.equal(out.detach(), y)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_made_in_inference_mode(builds, index):
    """A mixer made under inference mode has inference-tensor parameters, which count no writes: it runs, builds
    every call (nothing reused that a write could leave stale), and sees a write made in inference mode."""
    torch.manual_seed(0)
    with torch.inference_mode():
        m, x = _modules()[index]
        m.eval()
        a = m(x)
        n = builds["n"]
        b = m(x)
        assert torch.equal(a, b) and builds["n"] == 2 * n > 0
        next(p for name, p in m.named_parameters() if name.endswith(("D", "Ds"))).add_(1.0)
        c = m(x)
    fresh = _modules()[index][0].eval()
    fresh.load_state_dict(m.state_dict())
    with torch.no_grad():
        want = fresh(x)
    assert torch.equal(c, want) and not torch.equal(c, a)


def test_writes_through_data(builds, monkeypatch):
    """``p.data`` writes leave the version counter alone: a training forward drops the entries (so an optimizer
    written that way leaves nothing stale for the next evaluation); otherwise `clear()` or VSSM_PARAM_CACHE=0."""
    m, x = _modules()[0]
    with torch.no_grad():
        y0 = m(x)
    m(x).sum().backward()  # a training step ...
    m.A_log.data.add_(0.5)  # ... whose optimizer writes through .data
    with torch.no_grad():
        y1 = m(x)
        assert not torch.equal(y1, y0)
        torch.testing.assert_close(y1, _fresh_copy(m)(x), rtol=0, atol=0)
        m.A_log.data.add_(0.5)  # between two evaluations: the documented case, for clear()
        param_cache.clear(m)
        y2 = m(x)
        torch.testing.assert_close(y2, _fresh_copy(m)(x), rtol=0, atol=0)
        monkeypatch.setenv("VSSM_PARAM_CACHE", "0")
        n = builds["n"]
        m.A_log.data.add_(0.5)
        torch.testing.assert_close(m(x), _fresh_copy(m)(x), rtol=0, atol=0)
        assert builds["n"] > n
        monkeypatch.setenv("VSSM_PARAM_CACHE", "yes")
        with pytest.raises(ValueError, match="VSSM_PARAM_CACHE"):
            m(x)
