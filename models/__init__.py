"""vssm.models: one file per model family; importing a file registers its models with timm."""

from . import simba, vim, vmamba  # noqa: F401

__all__ = ["simba", "vim", "vmamba"]
