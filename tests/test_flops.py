"""FLOPs handles of vssm.flops against counts written out by hand."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vssm.flops import count_flops, count_params, selective_scan_flops
from vssm.kernels import selective_scan


class _ScanNet(nn.Module):
    """A linear layer then one selective scan over the pixels, (b, c, h, w) -> (b, dim, h*w)."""

    def __init__(self, in_chans: int = 3, dim: int = 8, d_state: int = 4, groups: int = 2):
        super().__init__()
        self.proj = nn.Linear(in_chans, dim)
        self.A_log = nn.Parameter(torch.zeros(dim, d_state))
        self.D = nn.Parameter(torch.ones(dim))
        self.d_state, self.groups = d_state, groups

    def forward(self, x):
        b = x.shape[0]
        u = self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2)  # (b, dim, L)
        L = u.shape[-1]
        bc = u[:, : self.groups * self.d_state].reshape(b, self.groups, self.d_state, L)
        return selective_scan(u, u, -torch.exp(self.A_log), bc, bc, D=self.D, z=u, delta_softplus=True)


def test_scan_handle_matches_hand_count():
    b, c, h, w, dim, n = 2, 3, 4, 5, 8, 4
    res = count_flops(_ScanNet(c, dim, n), (b, c, h, w))
    L = h * w
    linear = b * L * c * dim  # multiply-add = 1
    scan = 9 * b * L * dim * n + b * dim * L  # official VMamba convention, z gate not counted
    assert res["by_operator"]["selective_scan_fwd"] == scan
    assert res["by_operator"]["linear"] == linear
    assert res["flops"] == linear + scan
    assert res["unsupported"] == {}
    assert res["params"] == c * dim + dim + dim * n + dim == count_params(_ScanNet(c, dim, n))


def test_selective_scan_flops_formula():
    # VMamba-T stage 1 at 224: 4 directions of (1, 192, 3136) with N = 1
    assert selective_scan_flops(1, 192, 3136, 1, directions=4) == 4 * (9 * 3136 * 192 + 192 * 3136)
    with pytest.raises(ValueError, match="d_state"):
        selective_scan_flops(1, 2, 3, -1)


class _Attn(nn.Module):
    def forward(self, x):  # x: (b, c, h, w) -> heads=c, tokens=h, head dim=w
        q = x
        k = torch.cat([x, x], dim=2)  # Lk = 2h
        v = torch.cat([k, k], dim=3)  # Ev = 2w
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_handle():
    b, heads, lq, e = 2, 3, 5, 4
    res = count_flops(_Attn(), (b, heads, lq, e))
    lk, ev = 2 * lq, 2 * e
    assert res["by_operator"]["scaled_dot_product_attention"] == b * heads * lq * lk * (e + ev)


class _FFT(nn.Module):
    def forward(self, x):  # (b, c, h, w)
        f = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")  # over c and h, half spectrum along h
        g = torch.fft.fft(f, dim=3)  # complex FFT along w
        return torch.fft.irfft2(g, s=(x.shape[1], x.shape[2]), dim=(1, 2), norm="ortho")


def test_fft_handles():
    b, c, h, w = 2, 4, 6, 8
    res = count_flops(_FFT(), (b, c, h, w))
    ops = res["by_operator"]
    real = b * c * h * w
    half = b * c * (h // 2 + 1) * w
    assert ops["fft_rfft2"] == round(1.25 * real * math.log2(c * h))
    assert ops["fft_fft"] == round(2.5 * half * math.log2(w))
    assert ops["fft_irfft2"] == round(1.25 * real * math.log2(c * h))
    assert res["unsupported"] == {}


def test_count_flops_timm_model_and_mode_restored():
    import timm

    model = timm.create_model("deit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10)
    model.train()
    res = count_flops(model, 32)
    assert model.training
    # patch embed + per block: qkv, attn (sdpa), proj, mlp; head; all multiply-adds
    tokens, dim = 16 + 1, 192
    patch = 16 * (3 * 8 * 8) * dim
    block = tokens * dim * 3 * dim + tokens * tokens * 2 * dim + tokens * dim * dim + 2 * tokens * dim * 4 * dim
    norms = (2 * 2 + 1) * tokens * dim * 5
    assert res["flops"] == patch + 2 * block + norms + dim * 10
    assert res["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("bad", [0, (3, 0, 4), "224", (1, 2, 3, 4, 5), 2.5])
def test_count_flops_rejects_bad_input_size(bad):
    with pytest.raises(ValueError, match="input_size"):
        count_flops(nn.Conv2d(3, 4, 1), bad)


def test_count_flops_rejects_non_module():
    with pytest.raises(TypeError, match="model"):
        count_flops(lambda x: x, 8)


def test_build_uninitialised_counts_like_an_initialised_model():
    """The zoo table builds its models without initialisers (vssm.train.flops): the same parameters and
    FLOPs as the initialised model, parameters zero-filled, buffers computed as usual."""
    from vssm.train.build import create_model
    from vssm.train.flops import build_uninitialised

    kw = {"patch_size": 8, "embed_dim": 32, "depth": 1, "num_classes": 10}
    fast = build_uninitialised("vim_tiny_patch16_224", 32, **kw)
    slow = create_model("vim_tiny_patch16_224", 32, **kw)
    assert all(not p.any() for p in fast.parameters())
    assert [b.shape for b in fast.buffers()] == [b.shape for b in slow.buffers()]
    for a, b in zip(fast.buffers(), slow.buffers()):
        if not b.is_floating_point():
            assert torch.equal(a, b)  # index tables and the like are computed, not skipped
    a, b = count_flops(fast, 32), count_flops(slow, 32)
    assert (a["params"], a["flops"], a["by_operator"]) == (b["params"], b["flops"], b["by_operator"])
