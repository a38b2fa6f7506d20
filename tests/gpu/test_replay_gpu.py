"""GPU tests of the launch plans of Vim's inference mixer (`vssm.kernels.replay`, `Mamba._mix_planned`): at the sizes
they are for (Vim-Ti at 1248 px, batch 8, and at 224, batch 128; bf16 autocast, inference mode) every block records
a plan and the model's output with plans equals the output without them bit for bit, replayed straight to the
launchers, through Triton's path when a launch hook is set, and inside a captured CUDA graph; recording them (its
check holds the region's result on the host) and replaying them take no more device memory at peak than the model
without them."""

from __future__ import annotations

import pytest
import torch

import vssm.mamba as vm
from vssm.kernels import replay

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module", params=[(1248, 8), (224, 128)], ids=["1248x8", "224x128"])
def vim(request):
    """Vim-Ti at 1248 px, batch 8 (the conv-projection kernel, then the chunked scan) and at 224, batch 128 (the
    conv kernel, x_proj / dt_proj as bmm(out=), the walking scan)."""
    import timm

    import vssm  # noqa: F401  (registers the models)

    px, batch = request.param
    torch.manual_seed(0)
    model = timm.create_model("vim_tiny_patch16_224", img_size=px).cuda().eval()
    x = torch.randn(batch, 3, px, px, device="cuda")
    return model, x


def _forward(model, x):
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        return model(x)


def _unplanned(model, x):
    vm.LAUNCH_PLANS = False
    try:
        return _forward(model, x)
    finally:
        vm.LAUNCH_PLANS = True


def test_plans_equal_unplanned(vim, monkeypatch):
    model, x = vim
    want = _unplanned(model, x)
    runs = []
    real = replay.Plan.run
    monkeypatch.setattr(replay.Plan, "run", lambda self, *a, **k: (runs.append(k.get("poison", False)),
                                                                  real(self, *a, **k))[1])
    outs = [_forward(model, x) for _ in range(3)]
    mixers = [m for m in model.modules() if isinstance(m, vm.Mamba)]
    entries = [e for m in mixers for e in vm._PLANS.get(m, {}).values()]
    assert len(mixers) == 24 and len(entries) == 24
    assert all(e[1] is not None for e in entries), {e[2] for e in entries}
    assert runs.count(False) == 24 and runs.count(True) == 24  # the third call replayed; the second validated
    assert all(torch.equal(o, want) for o in outs)
    y = _forward(model, x.flip(0))  # other values, the same layout: replayed
    assert torch.equal(y, _unplanned(model, x.flip(0)))


def test_plans_through_tritons_path_with_a_hook(vim):
    from triton import knobs

    model, x = vim
    want = _unplanned(model, x)
    _forward(model, x), _forward(model, x)
    seen = []
    old = knobs.runtime.launch_enter_hook
    knobs.runtime.launch_enter_hook = lambda *a: seen.append(1)
    try:
        got = _forward(model, x)
    finally:
        knobs.runtime.launch_enter_hook = old
    assert seen and torch.equal(got, want)


def test_plans_in_a_cuda_graph(vim):
    model, x = vim
    x = x[:2].clone()
    want = _unplanned(model, x)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):  # records the plans for this layout
            _forward(model, x)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = _forward(model, x)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, want)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, _unplanned(model, x))


def test_plans_add_no_peak_memory(vim):
    model, x = vim
    for m in model.modules():
        vm._PLANS.pop(m, None)

    def peak(calls):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(calls):
            _forward(model, x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    _unplanned(model, x)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    vm.LAUNCH_PLANS = False
    try:
        off = peak(2)
    finally:
        vm.LAUNCH_PLANS = True
    recording = peak(2)  # seen, then recorded
    assert sum(e[1] is not None for m in model.modules() for e in vm._PLANS.get(m, {}).values()) == 24
    on = peak(2)
    assert recording <= off + 2**20 and on <= off + 2**20, (off, recording, on)
