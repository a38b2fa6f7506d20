"""vssm.models: one file per model family; importing a file registers its models with timm."""

from . import mambavision, simba, vim, vmamba  # noqa: F401

__all__ = ["mambavision", "simba", "vim", "vmamba"]
