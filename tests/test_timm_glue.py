"""vssm.timm_glue and what it gives every family: torch.fx graphs, the no-weight-decay rule, checkpoint loading,
generated aliases, clear errors for pretrained weights that can't be fetched, TorchScript refused."""

from __future__ import annotations

import argparse
import copy

import pytest
import timm
import torch
import torch.fx
from torchvision.models.feature_extraction import create_feature_extractor

import vssm  # noqa: F401  (registers the families)
from vssm.timm_glue import load_checkpoint

SMALL = {
    "vim_tiny_patch16_224": dict(depth=3, embed_dim=32, img_size=64),
    "vmamba_tiny_s1l8": dict(depths=(1, 1, 1, 1), embed_dim=16),
    "vanilla_vmamba_tiny": dict(depths=(1, 1, 1, 1), embed_dim=16),
    "simba_s": dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), stem_hidden_dim=8, d_state=8),
    "mambavision_t": dict(depths=(1, 1, 2, 2), embed_dim=16, stem_dim=8, window_size=(8, 8, 2, 1)),
}


def _small(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, **{**SMALL[name], **kwargs}).eval()


# ------------------------------------------------------------------------------------------------ FX


@pytest.mark.parametrize("name", sorted(SMALL))
def test_symbolic_trace_matches_eager(name):
    model = _small(name)
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(graph(x), model(x), rtol=0, atol=0)
    # the scan runs inside leaf modules: one call_module node per mixer, no scan internals in the graph
    targets = [n.target for n in graph.graph.nodes if n.op == "call_module"]
    assert any(t.endswith(("mixer", ".op")) for t in targets), targets
    assert not any("selective_scan" in str(n.target) for n in graph.graph.nodes)
    # input checks run in eager mode, not on proxies
    with pytest.raises(ValueError, match="input must be"):
        model(torch.randn(2, 4, 64, 64))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torchvision_feature_extractor(name):
    model = _small(name)
    node = {"vim": "layers.1", "vmamba": "layers.1.blocks", "vanilla": "layers.1.blocks", "simba": "stages.1",
            "mambavision": "levels.1.blocks"}[name.split("_")[0]]
    extractor = create_feature_extractor(model, return_nodes={node: "feat"})
    x = torch.randn(1, 3, 64, 64)
    feat = extractor(x)["feat"]
    taps = model.forward_intermediates(x, indices=[1], intermediates_only=True, output_fmt="NCHW")
    if name.startswith("vim"):  # token sequence with the middle class token; the tap has it removed
        mid = feat.shape[1] // 2
        feat = torch.cat([feat[:, :mid], feat[:, mid + 1 :]], dim=1).transpose(1, 2).reshape(taps[0].shape)
    elif feat.shape != taps[0].shape:  # channel-last stage outputs
        feat = feat.permute(0, 3, 1, 2)
    torch.testing.assert_close(feat, taps[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "simba_s"])
def test_timm_features_only_fx(name):
    torch.manual_seed(0)
    fx = timm.create_model(name, features_only=True, feature_cls="fx", **SMALL[name]).eval()
    assert fx.output_fmt == "NHWC"
    model = _small(name)
    model.load_state_dict(fx.graph_module.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    taps = model.forward_intermediates(x, intermediates_only=True, output_fmt="NHWC")
    outs = fx(x)
    assert [o.shape[-1] for o in outs] == fx.feature_info.channels()
    for out, tap in zip(outs, taps):
        torch.testing.assert_close(out, tap, rtol=0, atol=0)


def test_vim_features_only_fx():
    fx = timm.create_model("vim_tiny_patch16_224", features_only=True, feature_cls="fx", **SMALL["vim_tiny_patch16_224"])
    outs = fx.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 17, 32)] * 3  # 4x4 tokens + class token, last three blocks


# ------------------------------------------------------------------------------------------ TorchScript


@pytest.mark.parametrize("name", sorted(SMALL))
def test_torchscript_is_refused_clearly(name):
    with pytest.raises(RuntimeError, match=r"TorchScript.*torch\.compile.*torch\.export"):
        torch.jit.script(_small(name))


# ------------------------------------------------------------------------------------- weight decay


def test_no_weight_decay_comes_from_the_marks():
    vim = _small("vim_tiny_patch16_224")
    expected = {"pos_embed", "cls_token"} | {
        n for n, _ in vim.named_parameters() if n.rsplit(".", 1)[-1] in ("A_log", "D", "A_b_log", "D_b")
    }
    assert vim.no_weight_decay() == expected
    vmamba = _small("vmamba_tiny_s1l8")
    assert vmamba.no_weight_decay() == {n for n, _ in vmamba.named_parameters() if n.endswith((".A_logs", ".Ds"))}
    simba = _small("simba_s")
    assert simba.no_weight_decay() == {n for n, _ in simba.named_parameters() if n.endswith((".A_log", ".D"))}
    assert _small("mambavision_t").no_weight_decay() == set()  # the official recipe decays A_log


def test_no_weight_decay_survives_materialisation_copy_and_pruning():
    name = "vmamba_tiny_s1l8"
    expected = _small(name).no_weight_decay()
    with torch.device("meta"):
        meta = timm.create_model(name, **SMALL[name])
    real = meta.to_empty(device="cpu")  # new parameter objects, without the marks
    assert not any(getattr(p, "_no_weight_decay", False) for p in real.parameters())
    assert real.no_weight_decay() == expected
    assert copy.deepcopy(real).no_weight_decay() == expected
    real.prune_intermediate_layers([1])
    assert real.no_weight_decay() == {n for n in expected if n.startswith(("layers.0.", "layers.1."))}


def test_optimizer_factory_uses_the_rule():
    model = _small("vim_tiny_patch16_224")
    from timm.optim import create_optimizer_v2

    opt = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    for n, p in model.named_parameters():
        assert (id(p) in no_decay) == (p.ndim <= 1 or n in model.no_weight_decay()), n


# ---------------------------------------------------------------------------------------- checkpoints


class Unlisted:
    """A class no loader trusts."""


def test_load_checkpoint_allows_only_trusted_classes(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1.0)}, path)
    assert load_checkpoint(str(path), [argparse.Namespace])["args"].lr == 1.0
    with pytest.raises(ValueError, match="argparse.Namespace.*refusing"):
        load_checkpoint(str(path))
    torch.save({"model": {}, "odd": Unlisted()}, path)
    with pytest.raises(ValueError, match="Unlisted"):
        load_checkpoint(str(path), [argparse.Namespace])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_pretrained_from_a_local_file(name, tmp_path):
    """Every family loads a release-style file through timm's custom_load path (SiMBA had no loader),
    keeping its own classifier when the number of classes differs."""
    source = _small(name)
    path = tmp_path / "weights.pth"
    wrapped = {"state_dict": source.state_dict()} if name.startswith("mambavision") else {"model": source.state_dict()}
    torch.save(wrapped, path)
    overlay = dict(file=str(path), custom_load=True)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **SMALL[name]).eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
    other = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=3, **SMALL[name])
    assert other.get_classifier().out_features == 3
    stem = other.pretrained_cfg["first_conv"]
    torch.testing.assert_close(other.get_parameter(f"{stem}.weight"), source.get_parameter(f"{stem}.weight"))


@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "vim_tiny_patch16_224", "mambavision_t"])
def test_offline_pretrained_error_names_url_and_local_file_option(name, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    url = "http://127.0.0.1:9/vssm-missing/weights.pth"  # refused at once, as offline
    overlay = dict(url=url, hf_hub_id=None, hf_hub_filename=None)
    with pytest.raises(OSError) as info:
        timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **SMALL[name])
    msg = str(info.value)
    assert url in msg and "pretrained_cfg_overlay=dict(file='/path/to/weights.pth'" in msg, msg


def test_missing_local_file_is_named(tmp_path):
    path = str(tmp_path / "nope.pth")
    with pytest.raises(OSError, match="nope.pth"):
        timm.create_model("simba_s", pretrained=True, pretrained_cfg_overlay=dict(file=path), **SMALL["simba_s"])


# -------------------------------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    "alias, name",
    [
        ("vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2", "vim_tiny_patch16_224"),
        ("mamba_vision_T", "mambavision_t"),
        ("mamba_vision_L3_512_21k", "mambavision_l3_512_21k"),
    ],
)
def test_aliases_are_generated_entrypoints(alias, name):
    family = name.split("_")[0]
    assert alias in timm.list_models(module=family)
    a, b = timm.get_pretrained_cfg(alias).to_dict(), timm.get_pretrained_cfg(name).to_dict()
    assert {k: v for k, v in a.items() if k != "architecture"} == {k: v for k, v in b.items() if k != "architecture"}
    with torch.device("meta"):
        built = timm.create_model(alias)
    assert built.pretrained_cfg["architecture"] == alias
    assert sum(p.numel() for p in built.parameters()) == sum(
        p.numel() for p in timm.create_model(name, device="meta").parameters()
    )
