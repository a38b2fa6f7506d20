"""Command-line pieces shared by the tools."""

from __future__ import annotations


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
