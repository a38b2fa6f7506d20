"""MambaVision (models/mambavision.py): official architecture, keys, checkpoints and the timm API.

Expected numbers come from the official code (NVlabs/MambaVision mambavision/models/mamba_vision.py), never
from ours: parameter counts were read off the official builders, the state_dict names and shapes are written
out below from the official module layout, and the logits of `test_outputs_match_the_official_implementation`
were computed by the official model (its selective_scan_fn swapped for this repo's op, the only dependency
it lacks on the CPU).
"""

from __future__ import annotations

import argparse
import math

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

import vssm  # noqa: F401  (registers the models)
from vssm.kernels.selective_scan import selective_scan, selective_scan_naive
from vssm.models.mambavision import (
    MambaVision,
    MambaVisionMixer,
    checkpoint_filter_fn,
    crop_map,
    is_channels_last,
    window_partition,
    window_reverse,
)

# name -> parameter count of the official builder (1000 classes)
OFFICIAL_PARAMS = {
    "mambavision_t": 31794248,
    "mambavision_t2": 35104008,
    "mambavision_s": 50140584,
    "mambavision_b": 97685288,
    "mambavision_l": 227961048,
    "mambavision_l2": 241554824,
    "mambavision_b_21k": 97685288,
    "mambavision_l_21k": 227961048,
    "mambavision_l2_512_21k": 241554824,
    "mambavision_l3_256_21k": 739570472,
    "mambavision_l3_512_21k": 739570472,
}
# name -> (input side, crop_pct, crop_mode) of the official default_cfgs
OFFICIAL_CFG = {
    "mambavision_t": (224, 1.0, "center"),
    "mambavision_t2": (224, 0.98, "center"),
    "mambavision_s": (224, 0.93, "center"),
    "mambavision_b": (224, 1.0, "center"),
    "mambavision_l": (224, 1.0, "center"),
    "mambavision_l2": (224, 1.0, "center"),
    "mambavision_b_21k": (224, 1.0, "center"),
    "mambavision_l_21k": (224, 1.0, "center"),
    "mambavision_l2_512_21k": (512, 0.93, "squash"),
    "mambavision_l3_256_21k": (256, 1.0, "center"),
    "mambavision_l3_512_21k": (512, 0.93, "squash"),
}
ALIASES = {
    "mamba_vision_T": "mambavision_t",
    "mamba_vision_T2": "mambavision_t2",
    "mamba_vision_S": "mambavision_s",
    "mamba_vision_B": "mambavision_b",
    "mamba_vision_L": "mambavision_l",
    "mamba_vision_L2": "mambavision_l2",
    "mamba_vision_B_21k": "mambavision_b_21k",
    "mamba_vision_L_21k": "mambavision_l_21k",
    "mamba_vision_L2_512_21k": "mambavision_l2_512_21k",
    "mamba_vision_L3_256_21k": "mambavision_l3_256_21k",
    "mamba_vision_L3_512_21k": "mambavision_l3_512_21k",
}
# A small MambaVision for the CPU: two conv stages, hybrid stages of 3 (2 Mamba + 1 attention) and 2 blocks.
TINY = dict(
    depths=(1, 1, 3, 2),
    embed_dim=16,
    stem_dim=8,
    num_heads=(1, 1, 2, 2),
    window_size=(2, 2, 4, 2),
    num_classes=10,
)


def _nparams(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _tiny(name: str = "mambavision_t", **kwargs) -> MambaVision:
    torch.manual_seed(0)
    return timm.create_model(name, **dict(TINY, drop_path_rate=0.0, **kwargs))


def _hash_fill(model: nn.Module) -> nn.Module:
    """Deterministic weights (a float64 sine hash, by sorted key; the official model was filled the same
    way) with every parameter and BN statistic in a working range."""
    with torch.no_grad():
        for i, (k, p) in enumerate(sorted(model.state_dict().items())):
            if not p.dtype.is_floating_point:
                continue
            t = torch.arange(p.numel(), dtype=torch.float64)
            h = torch.remainder(torch.sin(t * 12.9898 + i * 78.233) * 43758.5453, 1.0) - 0.5  # in [-0.5, 0.5)
            if k.endswith("A_log"):
                v = (
                    torch.log(torch.arange(1, p.shape[1] + 1, dtype=torch.float64)).repeat(p.shape[0])
                    + 0.5 * h
                )
            elif k.endswith("dt_proj.bias"):
                v = -2.0 + h
            elif k.endswith("running_var"):
                v = 1.0 + 0.5 * h
            elif k.endswith((".D", "gamma_1", "gamma_2")) or (p.dim() == 1 and k.endswith("weight")):
                v = 1.0 + 0.2 * h
            elif p.dim() == 1:
                v = 0.05 * h
            else:
                v = 2.0 * h / p[0].numel() ** 0.5
            p.copy_(v.view(p.shape))
    return model


def _hash_image(*shape: int) -> torch.Tensor:
    t = torch.arange(math.prod(shape), dtype=torch.float64)
    return ((torch.remainder(torch.sin(t * 4.1414) * 9631.17, 1.0) - 0.5).view(*shape) * 4.0).float()


# --------------------------------------------------------------------------------------------- mixer


def _mixer_stepwise(m: MambaVisionMixer, x: torch.Tensor) -> torch.Tensor:
    """The official mixer written out: explicit taps for the "same" convs, the step-by-step scan."""
    H, N, R, k = m.d_inner // 2, m.d_state, m.dt_rank, m.d_conv
    xz = x @ m.in_proj.weight.T  # (batch, L, E)
    L = x.shape[1]

    def same_conv(v, w):  # v (batch, L, H), w (H, 1, k): out[t] = sum_j w[j] * v[t + j - (k - 1) // 2]
        left = (k - 1) // 2
        out = torch.zeros_like(v)
        for j in range(k):
            for t in range(L):
                s = t + j - left
                if 0 <= s < L:
                    out[:, t] += w[:, 0, j] * v[:, s]
        return F.silu(out)

    u = same_conv(xz[..., :H], m.conv1d_x.weight)
    z = same_conv(xz[..., H:], m.conv1d_z.weight)
    x_dbl = u @ m.x_proj.weight.T
    dt, B, C = x_dbl[..., :R], x_dbl[..., R : R + N], x_dbl[..., R + N :]
    delta = dt @ m.dt_proj.weight.T + m.dt_proj.bias  # the bias once here ...
    y = selective_scan_naive(
        u.transpose(1, 2),
        delta.transpose(1, 2),
        -torch.exp(m.A_log),
        B.transpose(1, 2),
        C.transpose(1, 2),
        m.D,
        delta_bias=m.dt_proj.bias,  # ... and once more inside the scan
        delta_softplus=True,
    )
    return torch.cat([y.transpose(1, 2), z], dim=-1) @ m.out_proj.weight.T


@pytest.mark.parametrize("d_conv", [3, 4])
def test_mixer_matches_the_stepwise_definition(d_conv):
    torch.manual_seed(0)
    m = MambaVisionMixer(20, d_state=3, d_conv=d_conv).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(2, 9, 20, dtype=torch.float64, requires_grad=True)
    out, ref = m(x), _mixer_stepwise(m, x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    # the training path (u copied token-major for x_proj and the scan) has the definition's gradients
    params = [x, *m.parameters()]
    dout = torch.randn_like(out)
    for g, want, p in zip(torch.autograd.grad(out, params, dout), torch.autograd.grad(ref, params, dout), params):
        assert g.shape == p.shape
        torch.testing.assert_close(g, want, rtol=1e-9, atol=1e-10)
    with torch.no_grad():  # the inference path
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
    # layout and init of the official mixer: expand 1, two halves, no conv bias, Mamba SSM init
    assert (m.d_inner, m.dt_rank, m.x_proj.weight.shape, m.A_log.shape) == (20, 2, (2 + 6, 10), (10, 3))
    assert m.conv1d_x.bias is None and m.conv1d_z.bias is None and m.in_proj.bias is None
    fresh = MambaVisionMixer(20, d_state=3)
    torch.testing.assert_close(fresh.A_log, torch.log(torch.arange(1.0, 4.0)).expand(10, 3))
    dt = F.softplus(fresh.dt_proj.bias)
    assert torch.all(dt >= 1e-4) and torch.all(dt <= 0.1 + 1e-6)


def test_mixer_empty_batch_and_single_token():
    m = MambaVisionMixer(20, d_state=3)
    assert m(torch.randn(0, 9, 20)).shape == (0, 9, 20)  # dt_proj's output reshaped with its width, not -1
    x = torch.randn(1, 1, 20, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.shape == (1, 1, 20) and torch.isfinite(x.grad).all()


def _saved_activation_bytes(fn, params) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of fn(), parameters left out."""
    kept, skip = {}, {p.untyped_storage().data_ptr() for p in params}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in skip:
            kept[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(kept.values())


def _mixer_official_layout(m: MambaVisionMixer, x: torch.Tensor) -> torch.Tensor:
    """The official mixer's sequence of ops (chunked halves, two convs, x_proj on a token-major copy of the x
    half, contiguous B / C), on the same selective-scan op: what it keeps for the backward is the bar."""
    H, N, R = m.d_inner // 2, m.d_state, m.dt_rank
    batch, L, _ = x.shape
    xz = m.in_proj(x).transpose(1, 2)
    u, z = xz.chunk(2, dim=1)
    u = F.silu(F.conv1d(u, m.conv1d_x.weight, m.conv1d_x.bias, padding="same", groups=H))
    z = F.silu(F.conv1d(z, m.conv1d_z.weight, m.conv1d_z.bias, padding="same", groups=H))
    x_dbl = m.x_proj(u.transpose(1, 2).reshape(batch * L, H))
    dt, B, C = torch.split(x_dbl, [R, N, N], dim=-1)
    delta = m.dt_proj(dt).view(batch, L, H).transpose(1, 2)
    B = B.view(batch, L, N).transpose(1, 2).contiguous()
    C = C.view(batch, L, N).transpose(1, 2).contiguous()
    y = selective_scan(u, delta, -torch.exp(m.A_log), B, C, m.D, delta_bias=m.dt_proj.bias, delta_softplus=True)
    return m.out_proj(torch.cat([y, z], dim=1).transpose(1, 2))


def test_mixer_training_keeps_no_more_than_the_official_layout():
    torch.manual_seed(0)
    m = MambaVisionMixer(32, d_state=4)
    x = torch.randn(3, 25, 32, requires_grad=True)
    ours, ours_bytes = _saved_activation_bytes(lambda: m(x), m.parameters())
    official, official_bytes = _saved_activation_bytes(lambda: _mixer_official_layout(m, x), m.parameters())
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)
    # the official layout keeps the x half twice (the scan's u and x_proj's token-major copy); ours once
    half = 3 * 25 * 16 * 4
    assert ours_bytes <= official_bytes - half, (ours_bytes, official_bytes)


def test_mixer_and_block_argument_errors():
    with pytest.raises(ValueError, match="even"):
        MambaVisionMixer(9)
    with pytest.raises(ValueError, match="d_state"):
        MambaVisionMixer(8, d_state=0)
    with pytest.raises(ValueError, match=r"d_model=8"):
        MambaVisionMixer(8)(torch.randn(1, 4, 6))
    with pytest.raises(ValueError, match="num_heads"):
        timm.create_model("mambavision_t", **dict(TINY, num_heads=(1, 1, 3, 2)))
    with pytest.raises(ValueError, match="depths"):
        timm.create_model("mambavision_t", depths=(1, 3, 8))


def test_window_partition_order_and_roundtrip():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    w = window_partition(x, 2)
    assert w.shape == (2 * 2 * 3, 4, 3)
    # window (row 0, col 1) of image 0: pixels (0,2), (0,3), (1,2), (1,3), row-major
    assert w[1, :, 0].tolist() == [x[0, 0, 0, 2], x[0, 0, 0, 3], x[0, 0, 1, 2], x[0, 0, 1, 3]]
    torch.testing.assert_close(window_reverse(w, 2, 4, 6), x)


def test_window_reverse_channels_last_layout():
    x = torch.randn(2, 3, 4, 6)
    for ws in (2, 4, 6):
        H, W = -(-4 // ws) * ws, -(-6 // ws) * ws
        xp = torch.nn.functional.pad(x, (0, W - 6, 0, H - 4))
        back = window_reverse(window_partition(xp, ws), ws, H, W, channels_last=True)
        assert back.shape == xp.shape and is_channels_last(back)
        torch.testing.assert_close(back, xp, rtol=0, atol=0)
        torch.testing.assert_close(crop_map(back, 4, 6, channels_last=True), x, rtol=0, atol=0)
        assert is_channels_last(crop_map(back, 4, 6, channels_last=True))
        assert crop_map(back.contiguous(), 4, 6).is_contiguous()
    # NCHW maps come back contiguous, also where the reshape alone would give a channels_last view
    for shape, ws in (((2, 3, 4, 6), 2), ((2, 3, 8, 4), 4)):
        y = torch.randn(shape)
        assert window_reverse(window_partition(y, ws).contiguous(), ws, *shape[2:]).is_contiguous()
    # one window per map: the reversed map is a view of the tokens, no copy
    w1 = torch.randn(2, 16, 5)
    assert window_reverse(w1, 4, 4, 4, channels_last=True).data_ptr() == w1.data_ptr()


@pytest.mark.parametrize("size", [(64, 64), (64, 96), (80, 48)])
def test_channels_last_maps_give_the_nchw_results(size):
    """The maps stored (B, H, W, C), as CUDA runs them (`MambaVision.channels_last`), against NCHW maps: one
    window per map (64 x 64), several with padding (64 x 96, 80 x 48); outputs and every gradient, float64."""
    model = _hash_fill(_tiny()).to(torch.float64).train()
    x = _hash_image(2, 3, *size).to(torch.float64)
    outs, grads = [], []
    for layout in (torch.contiguous_format, torch.channels_last):
        model.zero_grad()
        xi = x.contiguous(memory_format=layout).detach().requires_grad_(True)
        out = model(xi)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outs.append(out)
        grads.append({"input": xi.grad.clone(), **{n: p.grad.clone() for n, p in model.named_parameters()}})
        # the layout reached every stage's output
        with torch.no_grad():
            maps = model.forward_intermediates(xi, intermediates_only=True)
        assert [is_channels_last(m) for m in maps] == [layout == torch.channels_last] * 4
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-12)
    assert grads[1].keys() == grads[0].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-9, atol=1e-12, msg=n)


@pytest.mark.parametrize("in_chans", [3, 1])
def test_maps_take_the_device_layout(monkeypatch, in_chans):
    """On a device of `vssm.memory_format.CHANNELS_LAST_DEVICES` (CUDA; the CPU added here) every stage's map is
    stored channels_last, a 1-channel input's too; `channels_last = False` keeps NCHW; same results either way."""
    from vssm import memory_format

    model = _hash_fill(_tiny(in_chans=in_chans)).to(torch.float64).eval()
    x = _hash_image(2, in_chans, 64, 96).to(torch.float64)
    with torch.no_grad():
        ref = model(x)
        assert not any(is_channels_last(m) for m in model.forward_intermediates(x, intermediates_only=True))
        monkeypatch.setattr(memory_format, "CHANNELS_LAST_DEVICES", frozenset({"cpu", "cuda"}))
        assert all(is_channels_last(m) for m in model.forward_intermediates(x, intermediates_only=True))
        torch.testing.assert_close(model(x), ref, rtol=1e-10, atol=1e-12)
        model.channels_last = False
        assert not any(is_channels_last(m) for m in model.forward_intermediates(x, intermediates_only=True))


# ------------------------------------------------------------------------------------ architecture


@pytest.mark.parametrize("name", list(OFFICIAL_PARAMS))
def test_builds_with_official_params_and_cfg(name):
    model = timm.create_model(name, device="meta")
    assert _nparams(model) == OFFICIAL_PARAMS[name]
    side, crop_pct, crop_mode = OFFICIAL_CFG[name]
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, side, side) and cfg["pool_size"] == (side // 32, side // 32)
    assert (cfg["crop_pct"], cfg["crop_mode"], cfg["num_classes"]) == (crop_pct, crop_mode, 1000)
    assert (cfg["mean"], cfg["std"], cfg["interpolation"]) == (
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        "bicubic",
    )
    assert cfg["url"].startswith("https://huggingface.co/nvidia/MambaVision-") and cfg["url"].endswith(
        ".pth.tar"
    )
    assert cfg["tag"] == ("in21k_ft_in1k" if "21k" in name else "in1k")
    first = model.get_submodule(cfg["first_conv"])
    assert isinstance(first, nn.Conv2d) and first.in_channels == 3
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()


def test_official_names_are_aliases():
    from timm.models import get_pretrained_cfg

    for alias, name in ALIASES.items():
        assert timm.is_model(alias)
        tag = "in21k_ft_in1k" if "21k" in name else "in1k"
        assert get_pretrained_cfg(f"{alias}.{tag}").url == get_pretrained_cfg(f"{name}.{tag}").url
    a, b = (
        timm.create_model("mamba_vision_T2", device="meta"),
        timm.create_model("mambavision_t2", device="meta"),
    )
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_block_layout_follows_the_official_rules():
    model = timm.create_model("mambavision_b", device="meta")
    kinds = [["A" if blk.attention else "M" for blk in stage.blocks] for stage in model.levels[2:]]
    # depth 10: the second half is attention; depth 5 (odd): the last two
    assert kinds == [list("MMMMMAAAAA"), list("MMMAA")]
    assert [stage.window_size for stage in model.levels] == [None, None, 14, 7]
    assert model.levels[2].blocks[5].mixer.num_heads == 8 and model.levels[3].blocks[4].mixer.num_heads == 16
    assert model.levels[2].blocks[0].mixer.d_state == 8 and model.levels[2].blocks[0].mixer.d_conv == 3
    assert {m.eps for m in model.patch_embed.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-4}
    assert model.levels[0].blocks[0].act1.approximate == "tanh"
    t = timm.create_model("mambavision_t", device="meta")
    assert t.levels[2].blocks[0].gamma_1 is None and t.levels[0].blocks[0].gamma is None


def test_device_dtype_and_unknown_kwargs():
    model = timm.create_model("mambavision_t", device="meta", dtype=torch.bfloat16)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert all(p.is_meta for p in model.parameters())
    assert dtypes["levels.2.blocks.0.mixer.in_proj.weight"] == torch.bfloat16
    assert dtypes["levels.2.blocks.0.mixer.A_log"] == torch.float32  # the scan's decay stays float32
    with pytest.raises(TypeError):
        timm.create_model("mambavision_t", device="meta", not_an_argument=1)


def _official_t_keys(classes: int = 1000) -> dict[str, tuple]:
    """state_dict names and shapes of the official mamba_vision_T (dim 80, in_dim 32, depths 1/3/8/4)."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    def bn_keys(prefix, c):
        return {f"{prefix}.{s}": (() if s == "num_batches_tracked" else (c,)) for s in bn}

    keys = {"patch_embed.conv_down.0.weight": (32, 3, 3, 3), "patch_embed.conv_down.3.weight": (80, 32, 3, 3)}
    keys.update(bn_keys("patch_embed.conv_down.1", 32))
    keys.update(bn_keys("patch_embed.conv_down.4", 80))
    for i, depth in enumerate((1, 3, 8, 4)):
        d = 80 * 2**i
        for j in range(depth):
            p = f"levels.{i}.blocks.{j}."
            if i < 2:
                keys.update({p + "conv1.weight": (d, d, 3, 3), p + "conv1.bias": (d,)})
                keys.update({p + "conv2.weight": (d, d, 3, 3), p + "conv2.bias": (d,)})
                keys.update(bn_keys(p + "norm1", d))
                keys.update(bn_keys(p + "norm2", d))
                continue
            keys.update(
                {
                    p + "norm1.weight": (d,),
                    p + "norm1.bias": (d,),
                    p + "norm2.weight": (d,),
                    p + "norm2.bias": (d,),
                }
            )
            keys.update({p + "mlp.fc1.weight": (4 * d, d), p + "mlp.fc1.bias": (4 * d,)})
            keys.update({p + "mlp.fc2.weight": (d, 4 * d), p + "mlp.fc2.bias": (d,)})
            if j >= depth // 2:  # attention
                keys.update({p + "mixer.qkv.weight": (3 * d, d), p + "mixer.qkv.bias": (3 * d,)})
                keys.update({p + "mixer.proj.weight": (d, d), p + "mixer.proj.bias": (d,)})
            else:
                h, r = d // 2, math.ceil(d / 16)
                keys.update(
                    {
                        p + "mixer.A_log": (h, 8),
                        p + "mixer.D": (h,),
                        p + "mixer.in_proj.weight": (d, d),
                        p + "mixer.x_proj.weight": (r + 16, h),
                        p + "mixer.dt_proj.weight": (h, r),
                        p + "mixer.dt_proj.bias": (h,),
                        p + "mixer.out_proj.weight": (d, d),
                        p + "mixer.conv1d_x.weight": (h, 1, 3),
                        p + "mixer.conv1d_z.weight": (h, 1, 3),
                    }
                )
        if i < 3:
            keys[f"levels.{i}.downsample.reduction.0.weight"] = (2 * d, d, 3, 3)
    keys.update(bn_keys("norm", 640))
    keys.update({"head.weight": (classes, 640), "head.bias": (classes,)})
    return keys


def test_state_dict_names_and_shapes_are_official():
    got = {
        k: tuple(v.shape) for k, v in timm.create_model("mambavision_t", device="meta").state_dict().items()
    }
    want = _official_t_keys()
    assert len(want) == 252  # the official state_dict's length
    assert sorted(set(got) ^ set(want)) == []
    assert got == want
    # a representative subset, written out literally
    assert got["levels.2.blocks.0.mixer.x_proj.weight"] == (36, 160)
    assert got["levels.3.blocks.3.mixer.qkv.weight"] == (1920, 640)
    assert got["levels.2.blocks.3.mixer.A_log"] == (160, 8)


def test_flops_at_224_are_the_paper_figure():
    """Full count (vssm.flops: fvcore + scan + attention matmuls) within 5% of the paper's 4.4 G; the
    paper's own figure leaves out the attention matmuls (fvcore has no SDPA handle) and matches that."""
    from vssm.flops import count_flops

    res = count_flops(timm.create_model("mambavision_t"), 224)
    assert res["unsupported"] == {}
    ops = res["by_operator"]
    # scan: per Mamba block 9*L*D*N + L*D with D = width / 2, N = 8: 4 blocks of 196 tokens x 160 channels,
    # 2 of 49 x 320
    assert ops["selective_scan_fwd"] == 4 * (9 * 196 * 160 * 8 + 196 * 160) + 2 * (
        9 * 49 * 320 * 8 + 49 * 320
    )
    # attention (q @ k^T and attn @ v): 4 blocks on one 14x14 window of width 320 at stage 3, 2 blocks on
    # one 7x7 window of width 640 at stage 4
    assert ops["scaled_dot_product_attention"] == 4 * 196 * 196 * 2 * 320 + 2 * 49 * 49 * 2 * 640
    assert abs(res["gflops"] / 4.4 - 1) < 0.05, res["gflops"]
    without_attention = (res["flops"] - ops["scaled_dot_product_attention"]) / 1e9
    assert abs(without_attention / 4.4 - 1) < 0.02, without_attention


# Logits of the official MambaVision (NVlabs/MambaVision mambavision/models/mamba_vision.py) built as
# MambaVision(dim=16, in_dim=8, depths=[1, 1, 3, 2], window_size=[2, 2, 4, 2], num_heads=[1, 1, 2, 2],
# mlp_ratio=4, num_classes=10, drop_path_rate=0, layer_scale=...), weights from _hash_fill, eval mode, on the
# 64x96 input of the test below (stage 3 is 4x6 with 4x4 windows, stage 4 2x3 with 2x2 windows: both padded).
OFFICIAL_LOGITS = {
    None: [
        -0.118248,
        0.023725,
        0.407385,
        -0.243144,
        0.19775,
        0.067547,
        0.022531,
        -0.130283,
        -0.11397,
        -0.207162,
    ],
    1e-5: [
        -0.157167,
        -0.011864,
        0.130443,
        -0.29458,
        -0.375588,
        0.141345,
        0.044781,
        -0.055448,
        0.073805,
        -0.190232,
    ],
}


@pytest.mark.parametrize("layer_scale", list(OFFICIAL_LOGITS))
def test_outputs_match_the_official_implementation(layer_scale):
    model = _hash_fill(_tiny(layer_scale=layer_scale)).eval()
    with torch.no_grad():
        logits = model(_hash_image(1, 3, 64, 96))[0]
    torch.testing.assert_close(logits, torch.tensor(OFFICIAL_LOGITS[layer_scale]), rtol=0, atol=1e-4)


# -------------------------------------------------------------------------------------------- timm API


def test_forward_backward_every_parameter_gets_a_gradient():
    model = _tiny().train()
    x = torch.randn(2, 3, 64, 96)
    out = model(x)
    assert out.shape == (2, 10)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_grad_checkpointing_gives_the_same_output_and_gradients():
    model = _hash_fill(_tiny()).train()
    x = torch.randn(2, 3, 64, 64)
    ref = model(x)
    ref.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)


def test_forward_intermediates_and_features_only_non_square():
    model = _hash_fill(_tiny()).eval()
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        assert [tuple(t.shape) for t in inter] == [
            (1, 16, 24, 40),
            (1, 32, 12, 20),
            (1, 64, 6, 10),
            (1, 128, 3, 5),
        ]
        last = model.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)
        torch.testing.assert_close(last[0], final)  # no per-stage norms: the final BatchNorm
        early = model.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        torch.testing.assert_close(early[0], inter[1])

    feat = timm.create_model(
        "mambavision_t", features_only=True, **{k: v for k, v in TINY.items() if k != "num_classes"}
    )
    info = feat.feature_info
    assert info.channels() == [16, 32, 64, 128] and info.reduction() == [4, 8, 16, 32]
    outs = feat(x)
    assert [o.shape[1] for o in outs] == info.channels()
    assert [x.shape[-1] // o.shape[-1] for o in outs] == info.reduction()
    # the official detection backbone's per-stage LayerNorm2d, and no classifier left
    assert [type(getattr(feat.model, f"outnorm{i}")).__name__ for i in range(4)] == ["LayerNorm2d"] * 4
    assert not any(k.startswith(("head.", "norm.")) for k in feat.state_dict())
    two = timm.create_model(
        "mambavision_t",
        features_only=True,
        out_indices=(1, 2),
        **{k: v for k, v in TINY.items() if k != "num_classes"},
    )
    assert [o.shape[1] for o in two(x)] == [32, 64] and len(two.model.levels) == 3
    with pytest.raises(ValueError, match="getter"):
        timm.create_model("mambavision_t", features_only=True, feature_cls="hook", **TINY)


def test_classifier_api():
    model = _tiny().to(torch.float64).eval()
    model.reset_classifier(7)
    assert not model.head.training and model.head.weight.dtype == torch.float64
    model = _tiny()
    x = torch.randn(2, 3, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (2, 128, 2, 2)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 128)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.get_classifier().out_features == 5
    model.reset_classifier(0)
    assert model(x).shape == (2, 128)
    model.reset_classifier(3, global_pool="")
    assert model(x).shape == (2, 3, 2, 2)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(3, global_pool="max")
    matcher = model.group_matcher()
    assert matcher["stem"] == r"^patch_embed"
    assert model.no_weight_decay() == set()  # as the official model: its trainer decays the 2-D A_log


def test_official_checkpoint_loads_strict_through_timm(tmp_path):
    """{"state_dict": ...} with DDP prefixes, through timm's own weights-only loader and the filter."""
    src = _hash_fill(_tiny()).eval()
    path = str(tmp_path / "mambavision_tiny_1k.pth.tar")
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    overlay = dict(file=path, num_classes=10)
    model = timm.create_model("mambavision_t", pretrained=True, pretrained_cfg_overlay=overlay, **TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x))
    # features_only: the per-stage norms keep their init, everything else loads
    feat = timm.create_model(
        "mambavision_t", pretrained=True, pretrained_cfg_overlay=overlay, features_only=True, **TINY
    )
    torch.testing.assert_close(
        feat.model.levels[3].blocks[1].mlp.fc2.weight, src.levels[3].blocks[1].mlp.fc2.weight
    )
    torch.testing.assert_close(feat.model.outnorm3.weight, torch.ones(128))
    # the filter alone: {"state_dict": ...} unwrapped, DDP prefix stripped, non-tensors dropped
    sd = checkpoint_filter_fn({"state_dict": {"module.head.bias": torch.ones(10), "epoch": 3}}, model)
    assert list(sd) == ["head.bias"]


def _release_file(tmp_path, state_dict: dict, name: str = "mambavision_tiny_1k.pth.tar") -> str:
    """A release file as the official (timm) trainer writes one: weights under state_dict, an EMA copy,
    the optimizer state and the pickled argparse Namespace of the run."""
    path = str(tmp_path / name)
    ema = {k: torch.zeros_like(v) for k, v in state_dict.items()}
    args = argparse.Namespace(model="mamba_vision_T", lr=0.005)
    torch.save(
        {
            "epoch": 309,
            "arch": "mamba_vision_T",
            "state_dict": state_dict,
            "state_dict_ema": ema,
            "optimizer": {"state": {}},
            "version": 2,
            "args": args,
            "metric": 82.3,
        },
        path,
    )
    return path


def test_release_file_loads_its_state_dict_weights(tmp_path):
    """custom_load (the registry default for the release URLs): MambaVision.load_pretrained, which takes
    the state_dict weights as the official loader does, not the EMA copy timm's loader would pick."""
    assert timm.create_model("mambavision_t", device="meta").pretrained_cfg["custom_load"] is True
    src = _hash_fill(_tiny()).eval()
    path = _release_file(tmp_path, {"module." + k: v for k, v in src.state_dict().items()})
    overlay = dict(file=path, custom_load=True)
    model = timm.create_model("mambavision_t", pretrained=True, pretrained_cfg_overlay=overlay, **TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x))
    # another classifier size keeps its own head; other input channels adapt the stem
    other = timm.create_model(
        "mambavision_t", pretrained=True, pretrained_cfg_overlay=overlay, **dict(TINY, num_classes=4)
    )
    torch.testing.assert_close(other.levels[2].blocks[0].mixer.A_log, src.levels[2].blocks[0].mixer.A_log)
    assert other.get_classifier().out_features == 4
    gray = timm.create_model(
        "mambavision_t", pretrained=True, pretrained_cfg_overlay=overlay, in_chans=1, **TINY
    )
    torch.testing.assert_close(
        gray.patch_embed.conv_down[0].weight, src.patch_embed.conv_down[0].weight.sum(1, True)
    )


def test_foreign_pickles_and_wrong_keys_are_refused(tmp_path):
    src = _tiny()
    path = str(tmp_path / "evil.pth.tar")
    torch.save({"state_dict": src.state_dict(), "cfg": _Foreign()}, path)
    with pytest.raises(ValueError, match="refusing"):
        timm.create_model(
            "mambavision_t", pretrained=True, pretrained_cfg_overlay=dict(file=path, custom_load=True), **TINY
        )
    path = _release_file(
        tmp_path, {k: v for k, v in src.state_dict().items() if "A_log" not in k}, "partial.pth.tar"
    )
    with pytest.raises(RuntimeError, match="A_log"):
        timm.create_model(
            "mambavision_t", pretrained=True, pretrained_cfg_overlay=dict(file=path, custom_load=True), **TINY
        )


class _Foreign:
    pass


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.randn(1, 4, 64, 64), r"\(batch, 3, H, W\)"),
        (torch.randn(3, 64, 64), r"\(batch, 3, H, W\)"),
        (torch.randn(1, 3, 0, 64), "H, W >= 1"),
    ],
)
def test_bad_input_is_a_clear_error(x, match):
    with pytest.raises(ValueError, match=match):
        _tiny()(x)


def test_bf16_weights_forward():
    model = _tiny().to(torch.bfloat16).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
