"""What every vssm model family shares with timm, in one place.

- `TimmModel`: the mixin of the four model classes: ``no_weight_decay()`` from the parameters' marks,
  TorchScript refused with an error that names the ways that work (torch.compile, torch.export).
- `fx_leaf`: a class decorator for the modules that call the selective scan (the mixers): torch.fx records
  them as one ``call_module`` node (timm's tracer, torchvision's feature extraction and plain
  ``torch.fx.symbolic_trace`` alike) instead of tracing the scan's argument checks.
- `is_symbolic`: True for torch.fx proxies, whose shapes are unknown (the models skip their input checks then).
- `mark_no_weight_decay` / `record_no_weight_decay`: the no-weight-decay rule (`vssm.ssm_init.init_ssm_` marks
  A_log and D; the models mark their embeddings).
- `load_checkpoint` / `load_pretrained`: official release files (weights-only, with the few trainer classes
  they pickle allowed), strict loading with timm's classifier and input-channel rules.
- `build_model`: timm's ``build_model_with_cfg`` with a clear error when pretrained weights can't be fetched.
- `alias_cfgs` / `register_aliases`: official model names registered as generated timm entrypoints.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.fx
import torch.nn as nn
from timm.layers import register_notrace_module
from timm.models import adapt_input_conv, build_model_with_cfg, register_model

__all__ = [
    "TimmModel",
    "alias_cfgs",
    "build_model",
    "fx_leaf",
    "is_symbolic",
    "load_checkpoint",
    "load_pretrained",
    "mark_no_weight_decay",
    "record_no_weight_decay",
    "register_aliases",
]

NO_WEIGHT_DECAY = "_no_weight_decay"  # the attribute `mark_no_weight_decay` sets on a parameter


# ------------------------------------------------------------------------------------------------ FX


def is_symbolic(x: Any) -> bool:
    """True while torch.fx traces: `x` is a Proxy, with no shape to check."""
    return isinstance(x, torch.fx.Proxy)


def fx_leaf(cls: type[nn.Module]) -> type[nn.Module]:
    """Make `cls` a leaf of torch.fx graphs: its calls are recorded as ``call_module`` nodes.

    timm's tracer learns it from `register_notrace_module`; any other tracer (``torch.fx.symbolic_trace``,
    torchvision's ``create_feature_extractor``) calls ``forward`` with proxies, which then records the
    call itself. The graph module runs the real module, so eager behaviour (checks included) is kept.
    """
    forward = cls.forward

    def traced_forward(self, *args, **kwargs):
        proxy = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.fx.Proxy)), None)
        if proxy is not None:
            path = proxy.tracer.path_of_module(self)
            if path:  # "" is the traced root itself: trace into it
                return proxy.tracer.create_proxy("call_module", path, args, kwargs)
        return forward(self, *args, **kwargs)

    traced_forward.__name__ = forward.__name__
    traced_forward.__qualname__ = forward.__qualname__
    traced_forward.__doc__ = forward.__doc__
    traced_forward.__wrapped__ = forward
    cls.forward = traced_forward
    return register_notrace_module(cls)


# ------------------------------------------------------------------------------------- weight decay


def mark_no_weight_decay(*params: torch.Tensor) -> None:
    """Mark parameters to be left out of weight decay (read by `TimmModel.no_weight_decay`)."""
    for p in params:
        setattr(p, NO_WEIGHT_DECAY, True)


def record_no_weight_decay(model: nn.Module) -> None:
    """Remember the names of `model`'s marked parameters (call at the end of ``__init__``).

    Marks live on the parameter objects, which meta -> ``to_empty`` materialisation and ``deepcopy``
    replace; the names stay with the model.
    """
    names = {n for n, p in model.named_parameters() if getattr(p, NO_WEIGHT_DECAY, False)}
    model.__dict__["_no_weight_decay_names"] = frozenset(names)


class TimmModel:
    """Mixin of the vssm model classes (first base, before ``nn.Module``)."""

    # True where the family's official recipe decays the marked parameters too (its trainer exempts 1-D ones only)
    decay_marked_parameters: bool = False

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters marked with `mark_no_weight_decay` (the SSM's A_log / D, embeddings), as names.

        timm's optimizer factory adds every 1-D parameter and bias on its own; this adds the marked 2-D ones.
        """
        if self.decay_marked_parameters:
            return set()
        own = {n for n, _ in self.named_parameters()}
        marked = {n for n in own if getattr(self.get_parameter(n), NO_WEIGHT_DECAY, False)}
        return marked | (set(self.__dict__.get("_no_weight_decay_names", ())) & own)

    def __prepare_scriptable__(self):
        raise RuntimeError(
            f"{type(self).__name__}: TorchScript (torch.jit.script / trace) is not supported (it is deprecated in "
            "PyTorch): compile the model with torch.compile(model), or capture a graph with torch.export.export "
            "(see vssm.onnx for ONNX), or trace it with torch.fx"
        )


# -------------------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str, trusted: Iterable[type | str] = ()) -> dict:
    """Read a checkpoint file weights-only, with `trusted` pickled classes (types or "module.Class"
    names) allowed: files whose pickles hold only those load, any other object is refused by name."""
    types = [t for t in trusted if isinstance(t, type)]
    names = {t if isinstance(t, str) else f"{t.__module__}.{t.__qualname__}" for t in trusted}
    try:
        with torch.serialization.safe_globals(types):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        if not found <= names:
            raise ValueError(
                f"{path!r} holds pickled objects other than tensors and {sorted(names) or 'nothing else'} "
                f"({sorted(found - names)}); refusing to unpickle it"
            ) from e
        # only trusted classes that weights_only cannot rebuild (e.g. a yacs config): a full unpickle
        return torch.load(path, map_location="cpu", weights_only=False)


def _names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    return () if not value else (value,) if isinstance(value, str) else tuple(value)


def load_pretrained(
    model: nn.Module,
    checkpoint_path: str,
    filter_fn: Callable[[dict, nn.Module], dict],
    *,
    trusted: Iterable[type | str] = (),
    prefix: str = "",
) -> None:
    """Load an official checkpoint file into `model`, strictly, with timm's rules: a classifier of another
    size than the checkpoint's stays as initialised, RGB stem weights are adapted to other input channels
    (the names come from ``model.pretrained_cfg``: ``classifier`` and ``first_conv``)."""
    state_dict = filter_fn(load_checkpoint(checkpoint_path, trusted), model)
    if prefix:
        state_dict = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    cfg = getattr(model, "pretrained_cfg", None) or {}
    own = model.state_dict()
    for conv in _names(cfg.get("first_conv")):
        w, mine = state_dict.get(f"{conv}.weight"), own.get(f"{conv}.weight")
        if w is not None and mine is not None and w.dim() == 4 and w.shape[1] != mine.shape[1]:
            state_dict[f"{conv}.weight"] = adapt_input_conv(mine.shape[1], w, base_chans=w.shape[1])
    heads = tuple(f"{c}." for c in _names(cfg.get("classifier")))
    mismatched = [
        k for k in state_dict if k.startswith(heads) and (k not in own or own[k].shape != state_dict[k].shape)
    ]
    if mismatched:  # another number of classes (or none): keep ours, as timm does
        dropped = {k.rsplit(".", 1)[0] for k in mismatched}
        state_dict = {k: v for k, v in state_dict.items() if k.rsplit(".", 1)[0] not in dropped}
        heads = tuple(f"{h}." for h in dropped)
    else:
        heads = ()
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if not (heads and k.startswith(heads))]
    if missing or unexpected:
        raise RuntimeError(
            f"{type(model).__name__}.load_pretrained({checkpoint_path!r}): missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )


def _source(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """("file" | "url", location) that timm would load `cfg`'s weights from."""
    if cfg.get("file"):
        return "file", str(cfg["file"])
    if cfg.get("hf_hub_id") and cfg.get("hf_hub_filename") and not cfg.get("url"):
        return "url", f"https://huggingface.co/{cfg['hf_hub_id']}/resolve/main/{cfg['hf_hub_filename']}"
    if cfg.get("hf_hub_id") and not cfg.get("url"):
        return "url", f"https://huggingface.co/{cfg['hf_hub_id']}"
    return "url", str(cfg.get("url") or "")


def build_model(cls: type[nn.Module], variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """timm's ``build_model_with_cfg``; when pretrained weights can't be read (offline, missing file) the
    error names the URL or file that failed and how to pass a local copy."""
    try:
        return build_model_with_cfg(cls, variant, pretrained, **kwargs)
    except OSError as e:  # URLError, HTTP / hub errors, FileNotFoundError are all OSErrors
        if not pretrained:
            raise
        from timm.models import get_pretrained_cfg

        known = get_pretrained_cfg(variant)
        cfg = known.to_dict() if known is not None else {}
        cfg.update(kwargs.get("pretrained_cfg_overlay") or {})
        kind, where = _source(cfg)
        if kind == "file":
            raise OSError(f"{variant}: cannot read the pretrained weights file {where!r}: {e}") from e
        custom = ", custom_load=True" if cfg.get("custom_load") else ""
        local = os.path.basename(where.split("?")[0]) or "weights.pth"
        raise OSError(
            f"{variant}: could not fetch the pretrained weights from {where} ({type(e).__name__}: {e}). "
            f"Without network access, download that file elsewhere and pass it as "
            f"timm.create_model({variant!r}, pretrained=True, "
            f"pretrained_cfg_overlay=dict(file='/path/to/{local}'{custom}))"
        ) from e


# ------------------------------------------------------------------------------------------ aliases


def alias_cfgs(cfgs: Mapping[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    """The pretrained cfgs of `aliases` (alias -> name): every ``name[.tag]`` entry under ``alias[.tag]``."""
    out = {}
    for key, cfg in cfgs.items():
        name, dot, tag = key.partition(".")
        for alias, target in aliases.items():
            if target == name:
                out[alias + dot + tag] = cfg
    return out


def register_aliases(
    module_name: str,
    aliases: Mapping[str, str],
    build: Callable[[str, str, bool, dict], nn.Module],
) -> None:
    """Register a timm entrypoint ``alias(pretrained=False, **kwargs)`` in module `module_name` for each
    alias -> name, calling ``build(alias, name, pretrained, kwargs)`` (the alias's own cfgs, the name's args).
    Their cfgs must be in the module's ``default_cfgs`` already (`alias_cfgs`)."""
    module = sys.modules[module_name]
    for alias, name in aliases.items():
        entrypoint = _alias_entrypoint(alias, name, build)
        entrypoint.__module__ = module_name
        setattr(module, alias, register_model(entrypoint))


def _alias_entrypoint(alias: str, name: str, build: Callable[[str, str, bool, dict], nn.Module]) -> Callable:
    def entrypoint(pretrained: bool = False, **kwargs) -> nn.Module:
        return build(alias, name, pretrained, kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = alias
    entrypoint.__doc__ = f"Official name of `{name}` (same architecture and weights)."
    return entrypoint
