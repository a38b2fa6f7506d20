"""What timm's own model tests ask of every registered vssm model, checked over all of them at once.

Meta-device construction (timm builds models on ``torch.device("meta")``), the default cfg keys that
timm's cfg tests read, and ``reset_classifier`` keeping the model's training mode, device and dtype.
"""

from __future__ import annotations

import pytest
import timm
import torch

import vssm  # noqa: F401  (registers the families)

FAMILIES = ("vim", "vmamba", "simba", "mambavision")
NAMES = sorted(n for f in FAMILIES for n in timm.list_models(module=f))
# one small model per family for the checks that run a forward
SMALL = {
    "vim_tiny_patch16_224": dict(depth=2, img_size=32),
    "vmamba_tiny_s1l8": dict(depths=(1, 1, 1, 1), embed_dim=16),
    "simba_s": dict(),
    "mambavision_t": dict(depths=(1, 1, 2, 2), embed_dim=16, stem_dim=8),
}


def test_every_family_is_registered():
    assert {f for f in FAMILIES if timm.list_models(module=f)} == set(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_builds_on_the_meta_device(name):
    with torch.device("meta"):
        model = timm.create_model(name)
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_default_cfg_keys(name):
    cfg = timm.get_pretrained_cfg(name).to_dict()
    for key in ("input_size", "num_classes", "mean", "std", "first_conv", "classifier", "crop_pct"):
        assert key in cfg, key
    if not name.startswith("vim_"):  # hierarchical models: timm checks the unpooled map against pool_size
        assert cfg["pool_size"] is not None


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("training", [True, False])
def test_reset_classifier_keeps_mode_device_dtype(name, training):
    model = timm.create_model(name, **SMALL[name]).to(torch.float64)
    model.train(training)
    model.reset_classifier(7)
    assert all(m.training == training for m in model.modules())
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model.get_classifier().out_features == 7
