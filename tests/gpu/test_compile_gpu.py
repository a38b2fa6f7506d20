"""torch.compile(mode="reduce-overhead") (CUDA graphs, the launch-bound fast path of tools/benchmark.py and
validate.py) on every family: replayed graphs give the eager model's outputs and, in training, its gradients.

A kernel wrapper that keeps a device tensor alive across calls (a cache made on first use) breaks CUDA graph
trees ("tensor(s) in the cudagraph pool not tracked as outputs"); each case runs in its own process, the
compiled model first, so such a cache would be made inside the graph pool. MambaVision trains on cuDNN's
conv, so its conv op runs in the inference case only.
(tests/test_conv1d.py checks on the CPU that the conv kernels keep no tensor between calls.)"""

from __future__ import annotations

import os

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
    import subprocess
    import sys

    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import test_compile_gpu as t; " \
           f"t._case({name!r}, {kwargs!r}, {mode!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _case(name, kwargs, mode):
    import timm

    import vssm  # noqa: F401  (registers the models)

    torch.manual_seed(0)
    model = timm.create_model(name, drop_path_rate=0.0, **kwargs).cuda()
    compiled = torch.compile(model, mode="reduce-overhead")
    x = torch.randn(4, 3, 224, 224, device="cuda")
    # the compiled model runs first, in a process where no eager call made the kernels' buffers: a
    # tensor a kernel wrapper keeps from its first call is then allocated in the graph pool and refused
    if mode == "infer":
        model.eval()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(3):  # warm-up, record, replay
                out = compiled(x).float().clone()
            ref = model(x).float()
        assert _max_rel(out, ref) < 3e-2
        return
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(m, bf16=True):
        for p in params:
            p.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = m(x).float().square().mean()
        loss.backward()
        return loss.detach().clone(), [p.grad.detach().clone() for p in params]

    for _ in range(3):
        loss, got = grads(compiled)
    eager_loss, eager = grads(model)
    ref_loss, ref = grads(model, bf16=False)  # float32 eager: the reference both bf16 runs are held to
    assert _max_rel(loss, ref_loss) < 3 * _max_rel(eager_loss, ref_loss) + 1e-3
    # Each gradient's error against float32 may be at most a few times the eager bf16 model's own error
    # (plus a sliver of the largest gradient): a gradient the replayed graphs got wrong is off by its own
    # size; some are zero in exact arithmetic (a conv bias before BatchNorm, the key bias of attention)
    # and hold only rounding noise, which a plain relative comparison would flag.
    scale = max(float(r.abs().max()) for r in ref)
    bad = []
    for i, (g, e, r) in enumerate(zip(got, eager, ref)):
        err, eager_err = float((g.float() - r).abs().max()), float((e.float() - r).abs().max())
        if err > 3 * eager_err + 1e-3 * scale:
            bad.append((i, err, eager_err))
    assert not bad, f"{name}: gradients off (parameter index, error, eager bf16 error): {bad[:5]}"
