"""torch.compile(mode="reduce-overhead") (CUDA graphs, the launch-bound fast path of tools/benchmark.py and
validate.py) on every family: replayed graphs give the eager model's outputs and, in training, its gradients.

A kernel wrapper that keeps a device tensor alive across calls (a cache made on first use) breaks CUDA graph
trees ("tensor(s) in the cudagraph pool not tracked as outputs"); this is the test that catches it."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# the conv op in both layouts (Vim: two token-major tap sets; MambaVision: channel-major), the projected scan
# with two orders (Vim) and the plain op (MambaVision); VMamba and SiMBA use the same ops. Compiling takes
# about a minute per case on a cold cache.
MODELS = [
    ("vim_tiny_patch16_224", dict(depth=2)),
    ("mambavision_t", dict(depths=(1, 1, 2, 2))),
]


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))


@pytest.mark.parametrize("name,kwargs", MODELS, ids=[m[0] for m in MODELS])
@pytest.mark.parametrize("mode", ["infer", "train"])
def test_reduce_overhead_matches_eager(name, kwargs, mode):
    import timm

    import vssm  # noqa: F401  (registers the models)

    torch.manual_seed(0)
    model = timm.create_model(name, drop_path_rate=0.0, **kwargs).cuda()
    compiled = torch.compile(model, mode="reduce-overhead")
    x = torch.randn(4, 3, 224, 224, device="cuda")
    if mode == "infer":
        model.eval()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            ref = model(x).float()
            for _ in range(3):  # warm-up, record, replay
                out = compiled(x).float().clone()
        assert _max_rel(out, ref) < 3e-2
        return
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(m):
        for p in params:
            p.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(x).float().square().mean()
        loss.backward()
        return loss.detach().clone(), [p.grad.detach().clone() for p in params]

    ref_loss, ref_grads = grads(model)
    for _ in range(3):
        loss, got = grads(compiled)
    assert _max_rel(loss, ref_loss) < 3e-2
    bad = [(i, e) for i, (g, r) in enumerate(zip(got, ref_grads)) if (e := _max_rel(g, r)) > 0.1]
    assert not bad, f"{name}: gradients off (parameter index, max relative error): {bad[:5]}"
