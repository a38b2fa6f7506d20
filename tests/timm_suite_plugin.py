"""pytest plugin that runs timm's own ``tests/test_models.py`` on a few small vssm models.

Loaded with ``-p tests.timm_suite_plugin`` (see ``tests/test_timm_suite.py``). Before timm's test module is
imported it registers the vssm families, lets timm's parametrisation see them (Vim where timm lists its
ViT-style token models, every family where it lists the models with ``forward_intermediates``), and builds
the selected models small (``SUITE_KWARGS``). Collection keeps only the selected models and leaves out
the TorchScript tests (scripting is refused with an error that points to torch.compile / torch.export) and
the tests that timm's CI leaves out or that download weights (``LEFT_OUT``).
"""

from __future__ import annotations

import timm
import timm.models

import vssm  # noqa: F401  (registers the families)

FAMILIES = ("vim", "vmamba", "simba", "mambavision")
# the smallest name of each family, built smaller still
SUITE_KWARGS = {
    "vim_tiny_patch16_224": dict(depth=3, embed_dim=64),
    "vmamba_tiny_s1l8": dict(depths=(1, 1, 1, 1), embed_dim=16),
    "simba_s": dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), stem_hidden_dim=8, d_state=8),
    "mambavision_t": dict(depths=(1, 1, 2, 2), embed_dim=16, stem_dim=8),
}

# test_prune_intermediate_layers_contract: timm runs it in no CI job ("no marker, slow");
# test_model_load_pretrained, test_model_features_pretrained: download the release weights (tests/test_timm_glue.py checks the offline error)
LEFT_OUT = (
    "test_prune_intermediate_layers_contract",
    "test_model_load_pretrained",
    "test_model_features_pretrained",
)

_list_models = timm.list_models
_create_model = timm.create_model


def _as_list(v) -> list:
    return [] if v is None or v == "" else [v] if isinstance(v, str) else list(v)


def list_models(filter="", module="", exclude_filters="", **kwargs):
    """timm.list_models with Vim among the ViT-style ("non-standard") models and the vssm families among
    the modules timm tests through forward_intermediates."""
    filters, modules, excludes = _as_list(filter), _as_list(module), _as_list(exclude_filters)
    # Vim's and SiMBA's forward_features return token sequences with a class token (as ViT's and CaiT's)
    for timm_pattern, ours in (("vit_*", "vim_*"), ("cait_*", "simba_*")):
        if timm_pattern in filters:
            filters.append(ours)
        if timm_pattern in excludes:
            excludes.append(ours)
    if "vision_transformer" in modules:
        modules.extend(FAMILIES)
    return _list_models(filters or "", module=modules or "", exclude_filters=excludes or "", **kwargs)


def create_model(model_name, *args, **kwargs):
    small = SUITE_KWARGS.get(model_name.split(".")[0])  # timm's cfg tests pass "name.tag"
    if small:
        kwargs = {**small, **kwargs}
    return _create_model(model_name, *args, **kwargs)


def pytest_configure(config):
    # before timm's test module is collected (it imports these names); not on a plain import of this module
    timm.list_models = list_models
    timm.create_model = create_model


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        selected = (
            str(params.get("model_name")).split(".")[0] in SUITE_KWARGS
            and "torchscript" not in item.name
            and item.originalname not in LEFT_OUT
        )
        (keep if selected else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
