"""Vim (models/vim.py) and its mixer (vssm/mamba.py): names, cfgs, official state_dict layout and loading,
the forward math against a step-by-step re-derivation, and the timm API (features, dynamic sizes, compile)."""

from __future__ import annotations

import argparse
import math

import pytest
import timm
import torch
import torch.nn.functional as F

import vssm  # noqa: F401  (registers the models)
from vssm.mamba import Mamba
from vssm.models.vim import VisionMamba, checkpoint_filter_fn, resample_vim_pos_embed

SHORT = {
    "vim_tiny_patch16_224": (192, 16, 7.15e6),
    "vim_small_patch16_224": (384, 16, 25.8e6),
    "vim_base_patch16_224": (768, 16, 97.6e6),
    "vim_tiny_patch16_stride8_224": (192, 8, None),
    "vim_small_patch16_stride8_224": (384, 8, None),
    "vim_base_patch16_stride8_224": (768, 8, None),
}
# Official registry names (hustvl/Vim vim/models_mamba.py) -> ours.
OFFICIAL = {
    "vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": "vim_tiny_patch16_224",
    "vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_tiny_patch16_stride8_224"
    ),
    "vim_small_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": "vim_small_patch16_224",
    "vim_small_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_small_patch16_stride8_224"
    ),
    "vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2": "vim_base_patch16_224",
}

# A small Vim for the CPU tests that don't need the real widths (the reference scan is slow).
SMALL = dict(embed_dim=32, depth=2, num_classes=7)


def _nparams(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _official_vim_tiny_shapes() -> dict[str, tuple]:
    """Key -> shape of the official Vim-Ti state_dict (E = 384 inner, dt_rank 12, d_state 16, 197 tokens)."""
    shapes = {
        "cls_token": (1, 1, 192),
        "pos_embed": (1, 197, 192),
        "patch_embed.proj.weight": (192, 3, 16, 16),
        "patch_embed.proj.bias": (192,),
        "head.weight": (1000, 192),
        "head.bias": (1000,),
        "norm_f.weight": (192,),
    }
    for i in range(24):
        p = f"layers.{i}."
        shapes.update(
            {
                p + "mixer.A_log": (384, 16),
                p + "mixer.D": (384,),
                p + "mixer.A_b_log": (384, 16),
                p + "mixer.D_b": (384,),
                p + "mixer.in_proj.weight": (768, 192),
                p + "mixer.conv1d.weight": (384, 1, 4),
                p + "mixer.conv1d.bias": (384,),
                p + "mixer.x_proj.weight": (12 + 2 * 16, 384),
                p + "mixer.dt_proj.weight": (384, 12),
                p + "mixer.dt_proj.bias": (384,),
                p + "mixer.conv1d_b.weight": (384, 1, 4),
                p + "mixer.conv1d_b.bias": (384,),
                p + "mixer.x_proj_b.weight": (12 + 2 * 16, 384),
                p + "mixer.dt_proj_b.weight": (384, 12),
                p + "mixer.dt_proj_b.bias": (384,),
                p + "mixer.out_proj.weight": (192, 384),
                p + "norm.weight": (192,),
            }
        )
    return shapes


# ----------------------------------------------------------------------------------------------
# a step-by-step re-derivation of the official forward (float64), independent of vssm.kernels


def _ref_branch(x, z, conv_w, conv_b, x_proj_w, dt_w, dt_b, A_log, D):
    """One Mamba direction on (batch, L, E) x and z, the recurrence written one step at a time."""
    L, K = x.shape[1], conv_w.shape[-1]
    xp = F.pad(x, (0, 0, K - 1, 0))  # causal: output t sees inputs t-K+1 .. t
    xc = F.silu(sum(conv_w[:, 0, k] * xp[:, k : k + L] for k in range(K)) + conv_b)
    R, N = dt_w.shape[1], A_log.shape[1]
    dbc = xc @ x_proj_w.T
    dt, Bm, Cm = dbc[..., :R], dbc[..., R : R + N], dbc[..., R + N :]
    delta = F.softplus(dt @ dt_w.T + dt_b)
    A = -torch.exp(A_log)
    h = x.new_zeros(x.shape[0], x.shape[2], N)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * xc[:, t])[..., None] * Bm[:, t, None, :]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + D * xc[:, t])
    return torch.stack(ys, dim=1) * F.silu(z)


def _ref_mixer(m: Mamba, u: torch.Tensor) -> torch.Tensor:
    x, z = (u @ m.in_proj.weight.T).chunk(2, dim=-1)
    fwd = (m.conv1d.weight, m.conv1d.bias, m.x_proj.weight, m.dt_proj.weight, m.dt_proj.bias, m.A_log, m.D)
    y = _ref_branch(x, z, *fwd)
    if m.bidirectional:
        bwd = (m.conv1d_b.weight, m.conv1d_b.bias, m.x_proj_b.weight, m.dt_proj_b.weight, m.dt_proj_b.bias)
        y_b = _ref_branch(x.flip(1), z.flip(1), *bwd, m.A_b_log, m.D_b).flip(1)
        y = (y + y_b) / 2
    return y @ m.out_proj.weight.T


def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _ref_vim(model: VisionMamba, img: torch.Tensor) -> torch.Tensor:
    """The official forward as written there: add-then-norm blocks returning (hidden, residual)."""
    tok = model.patch_embed.proj(img).flatten(2).transpose(1, 2)
    M = tok.shape[1]
    cls = model.cls_token.expand(tok.shape[0], -1, -1)
    tok = torch.cat([tok[:, : M // 2], cls, tok[:, M // 2 :]], dim=1) + model.pos_embed
    hidden, residual = tok, None
    for layer in model.layers:
        residual = hidden if residual is None else residual + hidden
        hidden = _ref_mixer(layer.mixer, _rms(residual, layer.norm.weight, layer.norm.eps))
    out = _rms(residual + hidden, model.norm_f.weight, model.norm_f.eps)
    return out[:, M // 2] @ model.head.weight.T + model.head.bias


# ----------------------------------------------------------------------------------------------
# the mixer


@pytest.mark.parametrize("bidirectional", [False, True])
def test_mamba_matches_stepwise_definition(bidirectional):
    torch.manual_seed(0)
    m = Mamba(24, d_state=5, bidirectional=bidirectional).double()
    with torch.no_grad():  # non-trivial biases and skip so every term is exercised
        for p in (m.conv1d.bias, m.D) + ((m.conv1d_b.bias, m.D_b) if bidirectional else ()):
            p.normal_()
    u = torch.randn(2, 13, 24, dtype=torch.float64)
    torch.testing.assert_close(m(u), _ref_mixer(m, u), rtol=1e-9, atol=1e-10)


def test_mamba_one_direction_is_causal_and_two_directions_see_both_sides():
    torch.manual_seed(0)
    u = torch.randn(1, 12, 16, dtype=torch.float64)
    u2 = u.clone()
    u2[:, 6] += 1.0
    for bidirectional, changed_before in ((False, False), (True, True)):
        m = Mamba(16, bidirectional=bidirectional).double()
        d = (m(u2) - m(u)).abs().sum(-1)[0]
        assert (d[:6] > 0).any().item() is changed_before
        assert (d[6:] > 0).all()


def test_mamba_reversing_input_swaps_the_directions():
    # With the backward branch's parameters copied into the forward one and vice versa, the mixer of
    # the reversed sequence is the reversed output: checks the flips sit where they should.
    torch.manual_seed(0)
    m = Mamba(16, d_state=4, bidirectional=True).double()
    sd = m.state_dict()
    pairs = [("A_log", "A_b_log"), ("D", "D_b")] + [
        (f"{mod}.{p}", f"{mod}_b.{p}") for mod in ("conv1d", "x_proj", "dt_proj") for p in ("weight", "bias")
    ]
    swapped = dict(sd)
    for a, b in pairs:
        if a in sd:
            swapped[a], swapped[b] = sd[b], sd[a]
    m2 = Mamba(16, d_state=4, bidirectional=True).double()
    m2.load_state_dict(swapped)
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    torch.testing.assert_close(m2(u.flip(1)), m(u).flip(1), rtol=1e-9, atol=1e-10)


def test_mamba_names_init_and_errors():
    m = Mamba(64, d_state=16, bidirectional=True)
    names = {n for n, _ in m.named_parameters()}
    assert names == {
        "A_log", "D", "A_b_log", "D_b", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
        "dt_proj.weight", "dt_proj.bias", "conv1d_b.weight", "conv1d_b.bias", "x_proj_b.weight",
        "dt_proj_b.weight", "dt_proj_b.bias", "out_proj.weight",
    }  # fmt: skip
    assert {n for n, _ in Mamba(64).named_parameters()} == {n for n in names if "_b" not in n}
    assert m.dt_rank == 4 and m.x_proj.weight.shape == (4 + 32, 128)
    for A_log, D, dt_bias in ((m.A_log, m.D, m.dt_proj.bias), (m.A_b_log, m.D_b, m.dt_proj_b.bias)):
        torch.testing.assert_close(A_log.exp(), torch.arange(1.0, 17.0).expand(128, 16))
        assert torch.equal(D, torch.ones(128))
        dt = F.softplus(dt_bias.detach())
        assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001 and dt.std() > 0
        assert A_log._no_weight_decay and D._no_weight_decay
    assert Mamba(64, dtype=torch.bfloat16).A_log.dtype == torch.float32
    with pytest.raises(ValueError, match="d_model"):
        m(torch.randn(2, 5, 32))
    with pytest.raises(ValueError, match="d_state"):
        Mamba(64, d_state=0)
    with pytest.raises(TypeError, match="bidirectional"):
        Mamba(64, bidirectional="yes")


# ----------------------------------------------------------------------------------------------
# names, cfgs, parameter counts, state_dict layout


def test_every_name_registered_with_complete_cfg_and_param_counts():
    listed = set(timm.list_models("vim_*"))
    assert set(SHORT) | set(OFFICIAL) <= listed
    counts = {}
    for name in list(SHORT) + list(OFFICIAL):
        m = timm.create_model(name, device="meta")
        counts[name] = _nparams(m)
        cfg = m.pretrained_cfg
        for key in ("input_size", "crop_pct", "interpolation", "mean", "std", "first_conv", "classifier"):
            assert key in cfg, (name, key)
        assert "pool_size" in cfg and cfg["crop_pct"] == 0.875 and cfg["interpolation"] == "bicubic"
        assert cfg["input_size"] == (3, 224, 224) and cfg["test_input_size"] == (3, 224, 224)
        assert cfg["license"] == "apache-2.0" and "arXiv:2401.09417" in cfg["paper_ids"]
        assert m.get_submodule(cfg["first_conv"]).weight.shape[1] == 3
        assert m.get_submodule(cfg["classifier"]).out_features == 1000
        base = OFFICIAL.get(name, name)
        dim, stride, _ = SHORT[base]
        grid = 27 if stride == 8 else 14
        assert m.pos_embed.shape == (1, grid * grid + 1, dim)
        if "base_patch16_stride8" not in name:
            assert cfg["hf_hub_id"].startswith("hustvl/Vim-") and cfg["hf_hub_filename"].endswith(".pth")
    for name, (_, _, expected) in SHORT.items():
        if expected is not None:
            assert abs(counts[name] - expected) / expected < 0.005, (name, counts[name])
    for alias, name in OFFICIAL.items():
        assert counts[alias] == counts[name]
    assert (
        timm.create_model(list(OFFICIAL)[0], device="meta").pretrained_cfg["hf_hub_id"]
        == "hustvl/Vim-tiny-midclstok"
    )


def test_constructor_kwargs():
    m = timm.create_model("vim_tiny_patch16_224", depth=2, device="meta", dtype=torch.bfloat16)
    assert m.pos_embed.dtype == torch.bfloat16 and m.pos_embed.device.type == "meta"
    assert m.layers[0].mixer.A_log.dtype == torch.float32  # the scan's decay stays float32
    with pytest.raises(TypeError):
        timm.create_model("vim_tiny_patch16_224", depth=2, device="meta", not_an_argument=1)
    with pytest.raises(ValueError, match="global_pool"):
        timm.create_model("vim_tiny_patch16_224", depth=2, device="meta", global_pool="max")


def test_state_dict_keys_and_shapes_are_the_official_ones():
    m = timm.create_model("vim_tiny_patch16_224", device="meta")
    ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert ours == _official_vim_tiny_shapes()


def test_official_init():
    m = timm.create_model("vim_tiny_patch16_224", depth=4)
    assert m.pos_embed.std().item() == pytest.approx(0.02, rel=0.1)
    assert m.head.weight.std().item() == pytest.approx(0.02, rel=0.1) and not m.head.bias.any()
    w = m.layers[0].mixer.out_proj.weight
    bound = 1 / math.sqrt(w.shape[1]) / math.sqrt(4)  # kaiming-uniform(a=sqrt 5) / sqrt(depth)
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert m.layers[0].mixer.dt_proj.bias.min() < 0  # inverse softplus of dt < 0.7: not zeroed
    nwd = m.no_weight_decay()
    assert {"pos_embed", "cls_token", "layers.0.mixer.A_log", "layers.3.mixer.D_b"} <= nwd
    groups = m.group_matcher()
    assert "stem" in groups and "blocks" in groups


# ----------------------------------------------------------------------------------------------
# the forward


def test_forward_equals_official_formulation():
    torch.manual_seed(0)
    m = timm.create_model("vim_tiny_patch16_224", img_size=64, **SMALL).double().eval()
    img = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    torch.testing.assert_close(m(img), _ref_vim(m, img), rtol=1e-8, atol=1e-9)


def test_vim_tiny_forward_backward_224():
    torch.manual_seed(0)
    m = timm.create_model("vim_tiny_patch16_224")
    out = m(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad
    zero = [n for n, p in m.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero


def test_grad_checkpointing_same_output_and_grads():
    torch.manual_seed(0)
    m = timm.create_model("vim_tiny_patch16_224", img_size=64, drop_path_rate=0.0, **SMALL)
    img = torch.randn(2, 3, 64, 64)
    out = m(img)
    out.sum().backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m.set_grad_checkpointing(True)
    out2 = m(img)
    out2.sum().backward()
    torch.testing.assert_close(out2, out)
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)


def test_head_pools_the_middle_token_and_reset_classifier():
    torch.manual_seed(0)
    m = timm.create_model("vim_tiny_patch16_224", img_size=64, **SMALL).eval()
    img = torch.randn(2, 3, 64, 64)
    feats = m.forward_features(img)
    assert feats.shape == (2, 17, 32)
    torch.testing.assert_close(m.forward_head(feats, pre_logits=True), feats[:, 8])
    m.reset_classifier(5)
    assert m(img).shape == (2, 5) and m.get_classifier().out_features == 5
    m.reset_classifier(0, "avg")
    torch.testing.assert_close(m(img), torch.cat([feats[:, :8], feats[:, 9:]], 1).mean(1))


# ----------------------------------------------------------------------------------------------
# checkpoints and the position embedding


def test_official_checkpoint_loads_strict_through_timm(tmp_path):
    torch.manual_seed(0)
    src = timm.create_model("vim_tiny_patch16_224", depth=2)
    sd = {k: torch.randn_like(v) for k, v in src.state_dict().items()}
    assert set(sd) == {
        k for k in _official_vim_tiny_shapes() if k.split(".")[0] != "layers" or k.split(".")[1] in "01"
    }
    path = tmp_path / "vim_t_midclstok.pth"
    # official files carry the training args (an argparse Namespace) beside the weights
    torch.save({"model": sd, "args": argparse.Namespace(model="vim_tiny"), "epoch": 299}, path)
    m = timm.create_model(
        "vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
        depth=2,
    )
    for k, v in m.state_dict().items():
        assert torch.equal(v, sd[k]), k

    # another resolution: the position embedding is resampled with the class entry moved to the new middle
    m2 = timm.create_model(
        "vim_tiny_patch16_224",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
        depth=2,
        img_size=320,
    )
    assert m2.pos_embed.shape == (1, 401, 192)
    torch.testing.assert_close(m2.pos_embed[0, 200], sd["pos_embed"][0, 98])

    # another classifier: everything but the head loads
    m3 = timm.create_model(
        "vim_tiny_patch16_224",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
        depth=2,
        num_classes=3,
    )
    assert m3.head.weight.shape == (3, 192) and torch.equal(m3.pos_embed, sd["pos_embed"])

    # other input channels: the RGB stem is adapted (grey = sum over RGB), the rest loads unchanged
    m4 = timm.create_model(
        "vim_tiny_patch16_224",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
        depth=2,
        in_chans=1,
    )
    torch.testing.assert_close(m4.patch_embed.proj.weight, sd["patch_embed.proj.weight"].sum(1, keepdim=True))
    assert torch.equal(m4.layers[1].mixer.A_b_log, sd["layers.1.mixer.A_b_log"])

    # the filter alone unwraps {"model": ...}
    filtered = checkpoint_filter_fn({"model": sd}, m)
    m.load_state_dict(filtered, strict=True)


def test_pos_embed_resampling():
    old, C = (6, 6), 3
    rows, cols = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    grid = torch.stack([rows, cols, rows + 2 * cols], -1).reshape(1, 36, C)  # linear in position
    cls = torch.tensor([[[7.0, -7.0, 0.5]]])
    pe = torch.cat([grid[:, :18], cls, grid[:, 18:]], 1)  # class entry at M // 2 = 18

    assert resample_vim_pos_embed(pe, old, old) is pe
    new = (12, 8)
    out = resample_vim_pos_embed(pe, new, old)
    assert out.shape == (1, 97, C)
    torch.testing.assert_close(out[:, 48:49], cls)  # class entry copied to the new middle
    g = torch.cat([out[:, :48], out[:, 49:]], 1).reshape(12, 8, C)
    # bicubic upsampling reproduces a linear function away from the border: rows scale by 6/12, cols 6/8
    r = (torch.arange(12.0) + 0.5) * 6 / 12 - 0.5
    c = (torch.arange(8.0) + 0.5) * 6 / 8 - 0.5
    torch.testing.assert_close(g[3:-3, 3:-3, 0], r[3:-3, None].expand(6, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(g[3:-3, 3:-3, 1], c[None, 3:-3].expand(6, 2), atol=1e-4, rtol=0)
    # round trip up and back down stays close for a smooth embedding
    smooth = torch.cat([torch.sin(grid[:, :18] / 4), cls, torch.sin(grid[:, 18:] / 4)], 1)
    back = resample_vim_pos_embed(resample_vim_pos_embed(smooth, (12, 12), old), old, (12, 12))
    torch.testing.assert_close(back, smooth, atol=0.05, rtol=0)  # bicubic + antialias: not exact
    assert torch.equal(back[:, 18], cls[:, 0])
    with pytest.raises(ValueError, match="pos_embed"):
        resample_vim_pos_embed(pe, new, (5, 5))


# ----------------------------------------------------------------------------------------------
# features and sizes


@pytest.mark.parametrize("name, grid", [("vim_tiny_patch16_224", 14), ("vim_tiny_patch16_stride8_224", 27)])
def test_features_only_and_forward_intermediates(name, grid):
    torch.manual_seed(0)
    kw = dict(embed_dim=32, depth=4)
    m = timm.create_model(name, num_classes=0, **kw).eval()
    img = torch.randn(1, 3, 224, 224)
    taken = {}
    hooks = [
        m.layers[i].register_forward_hook(lambda mod, a, o, i=i: taken.__setitem__(i, o)) for i in range(4)
    ]
    final, inter = m.forward_intermediates(img, indices=[1, 3])
    for h in hooks:
        h.remove()
    mid = (grid * grid) // 2
    torch.testing.assert_close(final, m.forward_features(img))
    assert [t.shape for t in inter] == [(1, 32, grid, grid)] * 2
    for t, i in zip(inter, (1, 3)):  # = the block's output with the middle class token taken out
        torch.testing.assert_close(
            t.flatten(2).transpose(1, 2), torch.cat([taken[i][:, :mid], taken[i][:, mid + 1 :]], 1)
        )
    nlc = m.forward_intermediates(img, indices=2, output_fmt="NLC", norm=True, intermediates_only=True)
    assert len(nlc) == 2 and nlc[0].shape == (1, grid * grid, 32)
    pairs = m.forward_intermediates(img, indices=1, return_prefix_tokens=True, intermediates_only=True)
    torch.testing.assert_close(pairs[0][1], taken[3][:, mid : mid + 1])

    f = timm.create_model(name, features_only=True, out_indices=(1, 3), **kw).eval()
    own = f.state_dict()  # the getter wraps the model as `.model`, without the final norm and head
    assert set(own) == {
        "model." + k
        for k in m.state_dict()
        if k.split(".")[0] in ("cls_token", "pos_embed", "patch_embed", "layers")
    }
    f.load_state_dict({k: m.state_dict()[k[len("model.") :]] for k in own})
    maps = f(img)
    assert [t.shape for t in maps] == [(1, 32, grid, grid)] * 2
    assert f.feature_info.reduction() == [224 // grid if grid == 14 else 8] * 2
    assert f.feature_info.channels() == [32, 32]
    torch.testing.assert_close(maps[1], inter[1])

    kept = m.prune_intermediate_layers([1])
    assert kept == [1] and len(m.layers) == 2 and isinstance(m.head, torch.nn.Identity)


def test_dynamic_img_size_non_square():
    torch.manual_seed(0)
    kw = dict(embed_dim=32, depth=2, num_classes=5)
    dyn = timm.create_model("vim_small_patch16_224", dynamic_img_size=True, **kw).eval()
    img = torch.randn(1, 3, 224, 320)
    out = dyn(img)
    assert out.shape == (1, 5) and torch.isfinite(out).all()
    maps = dyn.forward_intermediates(img, indices=1, intermediates_only=True)
    assert maps[0].shape == (1, 32, 14, 20)
    # same as a model built for 224x320 from the 224 weights through the checkpoint filter
    fixed = timm.create_model("vim_small_patch16_224", img_size=(224, 320), **kw).eval()
    fixed.load_state_dict(checkpoint_filter_fn(dyn.state_dict(), fixed))
    torch.testing.assert_close(fixed(img), out)
    # native size: no resampling
    native = timm.create_model("vim_small_patch16_224", **kw).eval()
    native.load_state_dict(dyn.state_dict())
    img224 = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(dyn(img224), native(img224))
    # stride 8 accepts multiples of 8
    s8 = timm.create_model("vim_tiny_patch16_stride8_224", dynamic_img_size=True, **kw).eval()
    assert s8.forward_features(torch.randn(1, 3, 40, 56)).shape == (1, 4 * 6 + 1, 32)


def test_set_input_size_matches_dynamic_resampling():
    torch.manual_seed(0)
    kw = dict(embed_dim=32, depth=2, num_classes=5)
    dyn = timm.create_model("vim_tiny_patch16_224", img_size=64, dynamic_img_size=True, **kw).eval()
    resized = timm.create_model("vim_tiny_patch16_224", img_size=64, **kw).eval()
    resized.load_state_dict(dyn.state_dict())
    resized.set_input_size((96, 80))
    assert resized.pos_embed.shape == (1, 6 * 5 + 1, 32)
    img = torch.randn(1, 3, 96, 80)
    torch.testing.assert_close(resized(img), dyn(img))


def test_bfloat16_autocast_and_weights():
    torch.manual_seed(0)
    m = timm.create_model("vim_tiny_patch16_224", img_size=64, **SMALL).eval()
    img = torch.randn(2, 3, 64, 64)
    ref = m.forward_features(img)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m.forward_features(img)
    assert out.dtype == torch.float32  # the residual stream and final norm stay float32 under autocast
    assert ((out - ref).norm() / ref.norm()).item() < 0.02
    m16 = timm.create_model("vim_tiny_patch16_224", img_size=64, dtype=torch.bfloat16, **SMALL).eval()
    m16.load_state_dict(m.state_dict())
    out16 = m16.forward_features(img.bfloat16())
    assert out16.dtype == torch.bfloat16 and m16(img.bfloat16()).dtype == torch.bfloat16
    assert ((out16.float() - ref).norm() / ref.norm()).item() < 0.02


def test_bad_image_size_errors():
    kw = dict(embed_dim=32, depth=1, device="meta")
    fixed = timm.create_model("vim_tiny_patch16_224", **kw)
    with pytest.raises(ValueError, match=r"256x256.*224x224.*dynamic_img_size"):
        fixed(torch.empty(1, 3, 256, 256, device="meta"))
    dyn = timm.create_model("vim_tiny_patch16_224", dynamic_img_size=True, **kw)
    with pytest.raises(ValueError, match=r"230x224.*multiple"):
        dyn(torch.empty(1, 3, 230, 224, device="meta"))
    s8 = timm.create_model("vim_tiny_patch16_stride8_224", dynamic_img_size=True, **kw)
    with pytest.raises(ValueError, match=r"236x224.*stride 8x8"):
        s8(torch.empty(1, 3, 236, 224, device="meta"))


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    m = timm.create_model("vim_tiny_patch16_224", img_size=32, embed_dim=16, depth=1, num_classes=3).eval()
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eager = m(img)
        compiled = torch.compile(m, fullgraph=True)(img)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_input_layout_errors_and_shallow_features_only():
    model = timm.create_model("vim_tiny_patch16_224", depth=2, embed_dim=32, img_size=32, num_classes=3)
    for bad in (torch.randn(1, 4, 32, 32), torch.randn(3, 32, 32), torch.randn(1, 32, 32, 3)):
        with pytest.raises(ValueError, match=r"input must be \(batch, 3, H, W\)"):
            model(bad)
    feats = timm.create_model("vim_tiny_patch16_224", depth=2, embed_dim=32, img_size=32, features_only=True)
    assert [f.shape for f in feats(torch.randn(1, 3, 32, 32))] == [(1, 32, 2, 2)] * 2


@pytest.mark.parametrize("stride", [16, 8])
def test_patch_embed_matmul_equals_the_conv(stride):
    """Stride == patch: the patches cut and multiplied by the conv weight as one matmul (`patch_tokens`) equal the
    conv (float32, and under bfloat16 autocast to bfloat16 rounding); a smaller stride (overlapping patches) keeps the
    conv."""
    from vssm.models.vim import VimPatchEmbed

    torch.manual_seed(0)
    pe = VimPatchEmbed(img_size=64, patch_size=16, stride=stride, embed_dim=24)
    x = torch.randn(2, 3, 64, 64)
    conv = pe.proj(x).permute(0, 2, 3, 1)
    with torch.no_grad():
        y = pe(x)
        assert y.shape == conv.shape == (2, 64 // stride - (16 // stride - 1), 64 // stride - (16 // stride - 1), 24)
        assert (y - conv).abs().max() <= 1e-5 * conv.abs().max()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yb, cb = pe(x), pe.proj(x).permute(0, 2, 3, 1)
    assert yb.dtype == cb.dtype == torch.bfloat16
    assert (yb.float() - cb.float()).abs().max() <= 2e-2 * cb.float().abs().max()
    # gradients through the matmul form equal the conv's
    xg = x.clone().requires_grad_(True)
    gx, gw = torch.autograd.grad(pe(xg).pow(2).sum(), (xg, pe.proj.weight))
    xr = x.clone().requires_grad_(True)
    rx, rw = torch.autograd.grad(pe.proj(xr).pow(2).sum(), (xr, pe.proj.weight))
    assert (gx - rx).abs().max() <= 1e-4 * rx.abs().max() and (gw - rw).abs().max() <= 1e-4 * rw.abs().max()


def test_mamba_residual_argument():
    """`Mamba(x, residual=r)` is r + Mamba(x) (in r's dtype; on the CPU the composed form), forward and gradients;
    a residual of another shape is refused; Vim's blocks route the stream through it and give the model's logits
    unchanged against x + mixer(norm(x))."""
    torch.manual_seed(0)
    m = Mamba(16, d_state=4, bidirectional=True)
    x = torch.randn(2, 9, 16, requires_grad=True)
    r = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    out = m(x, residual=r)
    assert out.dtype == torch.float64
    ref = r + m(x)
    assert torch.allclose(out, ref)
    g = torch.autograd.grad(out.sum(), (x, r, m.out_proj.weight))
    gr = torch.autograd.grad(ref.sum(), (x, r, m.out_proj.weight))
    assert all(torch.allclose(a, b) for a, b in zip(g, gr))
    with pytest.raises(ValueError, match="`residual` has shape"):
        m(x, residual=torch.randn(2, 8, 16))
    model = timm.create_model("vim_tiny_patch16_224", img_size=64, depth=2).eval()
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fused = model(img)
        blocks = [b.forward for b in model.layers]
        for b in model.layers:
            b.forward = (lambda blk: lambda t: t.float() + blk.mixer(blk.norm(t.float())))(b)
        plain = model(img)
    assert torch.allclose(fused, plain, atol=1e-6)
    del blocks


def test_mamba_residual_out_matmul_and_its_fallback(monkeypatch):
    """`Mamba._residual_out`: residual + out_proj(sum over the directions) as one matmul over the directions' outputs
    stored (batch, L, K, E) with the weight repeated K times; in float32 (plain addmm) and, for bfloat16 outputs into a
    float32 stream, addmm with out_dtype where torch has it, else (the CPU here) a float32 matmul and add, remembered."""
    import vssm.mamba as vm

    torch.manual_seed(0)
    m = Mamba(16, d_state=4, bidirectional=True)
    batch, L, K, E = 2, 7, 2, m.d_inner
    store = torch.randn(batch, L, K, E)
    y = store.permute(0, 2, 3, 1)  # (batch, K, E, L)
    residual = torch.randn(batch, L, 16)
    want = residual + F.linear(y.sum(1).transpose(1, 2), m.out_proj.weight)
    with torch.no_grad():
        got = m._residual_out(y, residual)
        assert got.dtype == torch.float32 and torch.allclose(got, want, atol=1e-5)
        monkeypatch.setattr(vm, "_ADDMM_OUT_DTYPE", True)
        yb = store.bfloat16().permute(0, 2, 3, 1)
        gotb = m._residual_out(yb, residual)
    assert gotb.dtype == torch.float32
    # the fallback: the bfloat16 matmul (one rounding of its float32 sum, as out_proj's under autocast), then the add
    rows = store.bfloat16().reshape(batch * L, K * E)
    wantb = residual + torch.mm(rows, m.out_proj.weight.bfloat16().repeat(1, K).t()).float().view(batch, L, 16)
    assert torch.equal(gotb, wantb)
    assert (gotb - want).abs().max() <= 2e-2 * want.abs().max()
    assert vm._ADDMM_OUT_DTYPE is False  # the CPU has no addmm out_dtype: remembered


def test_fused_paths_keep_hooks_parametrizations_and_backends(monkeypatch):
    """The inference shortcuts step aside where they would change what users see: a hooked or parametrized patch conv
    runs as itself; a hooked mixer returns its own output (the block adds the stream); the fused residual needs the
    Triton scan backend and a non-empty input."""
    import vssm.mamba as vm
    from vssm.models.vim import VimPatchEmbed

    torch.manual_seed(0)
    pe = VimPatchEmbed(img_size=32, patch_size=16, embed_dim=8)
    seen = []
    pe.proj.register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        pe(x)
    assert seen == [(1, 8, 2, 2)]
    pe2 = VimPatchEmbed(img_size=32, patch_size=16, embed_dim=8)
    torch.nn.utils.parametrizations.weight_norm(pe2.proj)
    with torch.no_grad():
        pe2.proj.parametrizations.weight.original0.mul_(2)
        assert torch.allclose(pe2(x), pe2.proj(x).permute(0, 2, 3, 1))
    model = timm.create_model("vim_tiny_patch16_224", img_size=32, depth=1).eval()
    outs = []
    model.layers[0].mixer.register_forward_hook(lambda mod, inp, out: outs.append(out))
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 32, 32))
    assert len(outs) == 1 and feats.shape == (1, 5, 192)
    blk = model.layers[0]
    h = torch.randn(1, 5, 192)
    with torch.no_grad():
        y = blk(h)
        own = outs[-1]  # what the hook saw: the mixer's output without the stream
        assert torch.allclose(y, h + own, atol=1e-6) and torch.allclose(own, blk.mixer(blk.norm(h)), atol=1e-6)
    # the predicate: only on the Triton scan backend, only for a non-empty input
    m = Mamba(16, d_state=4, bidirectional=True)
    monkeypatch.setattr(vm, "has_fast_kernel", lambda t: True)  # stands in for a CUDA tensor
    xs, r = torch.randn(2, 16, 5), torch.randn(2, 5, 16)
    with torch.no_grad():
        monkeypatch.setenv("VSSM_SCAN_BACKEND", "triton")
        assert m._fused_residual(xs, r) and not m._fused_residual(xs[:0], r[:0])
        monkeypatch.setenv("VSSM_SCAN_BACKEND", "reference")
        assert not m._fused_residual(xs, r)
    assert not m._fused_residual(xs, r)  # grad mode on
