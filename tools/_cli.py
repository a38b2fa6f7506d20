"""Command-line pieces shared by the tools."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch.nn as nn


def parse_model_kwargs(items: list[str] | None) -> dict:
    """``["depth=2", "img_size=[224, 320]"]`` -> ``{"depth": 2, "img_size": [224, 320]}`` (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--model-kwargs: expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def create_model(name: str, img_size: int | None = None, **kwargs) -> nn.Module:
    """timm.create_model with vssm's families registered. ``img_size`` goes to models that take one (CNNs
    take any input size and are built without it; an ``img_size`` in kwargs wins). An unknown name or a
    keyword argument the model rejects is a ValueError naming it."""
    import timm

    import vssm  # noqa: F401  (registers the vssm families with timm)

    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        raise ValueError(f"model: {name!r} is not a timm model" + (f"; did you mean {close}?" if close else ""))
    try:
        if img_size is not None and "img_size" not in kwargs:
            try:
                return timm.create_model(name, img_size=img_size, **kwargs)
            except TypeError as e:
                if "img_size" not in str(e):
                    raise
        return timm.create_model(name, **kwargs)
    except TypeError as e:
        raise ValueError(f"model_kwargs: {name!r} does not accept these arguments ({e})") from e


def run_main(main: Callable[[], int], errors: tuple[type[BaseException], ...] = (ValueError,)) -> None:
    """Run a tool's main(); user-facing errors print as one line (no traceback) and exit with 2."""
    try:
        sys.exit(main())
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
