"""On / off switches read from the environment (``VSSM_FAST_LAUNCH``, ``VSSM_SS2D_FUNCTION``, ...)."""

from __future__ import annotations

import os

__all__ = ["interpreting", "switch"]


def switch(name: str, on: str, off: str, default: bool = True) -> bool:
    """The environment variable ``name`` as 1 (``on`` describes what it selects) or 0 (``off``); unset gives
    ``default``. Any other value is refused with an error naming the variable and both choices."""
    value = os.environ.get(name, "1" if default else "0").strip()
    if value not in ("0", "1"):
        raise ValueError(
            f"{name}={value!r}: expected 1 ({on}{', default' if default else ''}) or 0 ({off}{'' if default else ', default'})"
        )
    return value == "1"


def interpreting() -> bool:
    """Whether Triton runs its kernels in the interpreter (``TRITON_INTERPRET=1``: CPU tensors, no inline PTX)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"
