"""GPU tests of `vssm.kernels.launch.fast_launch` (skipped without CUDA): launches that skip Triton's
binding give the results of Triton's own launch path, across the specializations it keys on."""

from __future__ import annotations

import pytest
import torch

from vssm.kernels import depthwise_conv1d, selective_scan
from vssm.kernels.launch import fast_launch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

triton = pytest.importorskip("triton")
tl = triton.language


@fast_launch
@triton.jit
def _axpy(x_ptr, y_ptr, out_ptr, n, stride, alpha, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs * stride, mask=m)
    y = tl.load(y_ptr + offs, mask=m)
    tl.store(out_ptr + offs, alpha * x + y, mask=m)


def test_launch_skips_tritons_binding():
    """After the first launch of a specialization the compiled kernel is launched directly (no hooks are set
    here, so the fast path must be the one taken)."""
    from vssm.kernels import launch

    x = torch.randn(256, device="cuda")
    out = torch.empty_like(x)
    calls = []
    real = _axpy.kernel
    _axpy.kernel = type("Spy", (), {"__getitem__": lambda self, g: (calls.append(g), real[g])[1]})()
    try:
        for _ in range(3):
            _axpy[(2,)](x, x, out, 256, 1, 2.0, BLOCK=128)
    finally:
        _axpy.kernel = real
    torch.testing.assert_close(out, 3 * x)
    assert len(calls) <= 1 and launch._enabled()


def test_cached_launch_still_refuses_a_cpu_tensor():
    """The cached path hands CUDA tensors to the launcher as addresses (no driver check per pointer); a CPU
    tensor is another key, so it takes Triton's path and gets its error instead of an illegal address."""
    x = torch.randn(256, device="cuda")
    out = torch.empty_like(x)
    for _ in range(2):
        _axpy[(2,)](x, x, out, 256, 1, 2.0, BLOCK=128)
    with pytest.raises((ValueError, RuntimeError), match="cpu tensor|accessed"):
        _axpy[(2,)](x.cpu(), x, out, 256, 1, 2.0, BLOCK=128)
    _axpy[(2,)](x, x, out, 256, 1, 1.0, BLOCK=128)
    torch.testing.assert_close(out, 2 * x)


def test_specializations_are_kept_apart():
    """Alignment (offset views), ints equal to 1 / multiples of 16 / others, both dtypes, repeated launches
    (the cached path): every launch matches the arithmetic."""
    base = torch.randn(512 * 16 + 64, device="cuda")  # room for n * stride elements after any offset
    ybase = torch.randn(4096, device="cuda")
    for _ in range(3):  # the first pass fills the cache, the later ones take it
        for dtype in (torch.float32, torch.bfloat16):
            for off in (0, 1, 4, 16):
                for stride in (1, 2, 16, 3):
                    for n in (1, 16, 37, 512):
                        x = base.to(dtype)[off:]
                        y = ybase.to(dtype)[off:off + n]
                        out = torch.empty(n, device="cuda", dtype=dtype)
                        _axpy[(triton.cdiv(n, 128),)](x, y, out, n, stride, 0.5, BLOCK=128)
                        want = (0.5 * x[: n * stride: stride].float() + y.float()).to(dtype)
                        torch.testing.assert_close(out, want, rtol=0, atol=0)


@pytest.mark.parametrize("token_major", [False, True])
@pytest.mark.parametrize("N", [1, 16])
def test_scan_and_conv_equal_to_tritons_launch_path(monkeypatch, token_major, N):
    """The scan (forward + backward, two directions) and the conv op give the same bits with the fast launch
    as with Triton's launch path (VSSM_FAST_LAUNCH=0), on offset (unaligned) views too."""
    from vssm.kernels.selective_scan.cases import make_inputs

    results = []
    for flag in ("1", "0", "1"):
        monkeypatch.setenv("VSSM_FAST_LAUNCH", flag)
        x = make_inputs(4, 64, 97, N, 1, K=2, shared=("z",), dtype=torch.bfloat16, device="cuda",
                        token_major=token_major)
        x["u"] = torch.cat([torch.zeros_like(x["u"][..., :1]), x["u"]], dim=-1)[..., 1:]  # misaligned copy
        leaves = {k: None if v is None else v.detach().requires_grad_(True) for k, v in x.items()}
        out = selective_scan(**leaves, delta_softplus=True, orders=["natural", "reverse"], combine="mean")
        g = torch.autograd.grad(out.float().square().sum(), [v for v in leaves.values() if v is not None])
        w = torch.randn(64, 4, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
        buf = torch.randn(4 * 97 * 64 + 1, device="cuda", generator=torch.Generator("cuda").manual_seed(2))
        xc = buf.to(torch.bfloat16)[1:].view(4, 97, 64).requires_grad_(True)  # token-major, misaligned
        yc = depthwise_conv1d(xc, w, None, [-3], silu=True)
        gc = torch.autograd.grad(yc.float().sum(), xc)
        results.append((out, *g, yc, *gc))
    for a, b, c in zip(*results):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_ops_run_on_their_tensors_device_not_the_current_one():
    """Triton launches on the current device: with the tensors on cuda:1 and cuda:0 current, the scan, the
    depthwise conv and the LayerNorm (forward and backward) give what they give with cuda:1 current, and
    cuda:0 stays current."""
    from vssm.kernels.layernorm import layer_norm

    def run(dev):
        g = torch.Generator(device="cpu").manual_seed(0)
        batch, dim, L, N = 2, 64, 33, 8
        mk = lambda *s, scale=1.0: (torch.randn(*s, generator=g) * scale).to(dev).requires_grad_(True)  # noqa: E731
        u, delta, z = mk(batch, dim, L), mk(batch, dim, L, scale=0.5), mk(batch, dim, L)
        A = (-torch.rand(dim, N, generator=g) - 0.5).to(dev).requires_grad_(True)
        B, C, D, bias = mk(batch, N, L), mk(batch, N, L), mk(dim), mk(dim, scale=0.5)
        x, w = mk(batch, L, dim), mk(dim, 4, scale=0.5)
        ln_x, ln_w, ln_b = mk(100, 96), mk(96), mk(96)
        outs = [
            selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, orders=["natural", "reverse"]),
            depthwise_conv1d(x, w, None, [-3], silu=True),
            layer_norm(ln_x, ln_w, ln_b),
        ]
        leaves = [u, delta, A, B, C, D, z, bias, x, w, ln_x, ln_w, ln_b]
        grads = torch.autograd.grad([o.float().square().sum() for o in outs], leaves)
        return [t.detach().cpu() for t in (*outs, *grads)]

    torch.cuda.set_device(1)
    want = run("cuda:1")
    torch.cuda.set_device(0)
    got = run("cuda:1")
    assert torch.cuda.current_device() == 0
    for a, b in zip(got, want):
        assert torch.equal(a, b)
