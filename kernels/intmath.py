"""Integer helpers for the host side of the kernels.

`triton.cdiv` and `triton.next_power_of_2` are Triton `constexpr_function`s: called from Python they
unwrap constexprs on every call (about 2-5 us each), which adds up over the handful the host code makes
per scan call (see `vssm.kernels.eager` on host time). These are the same functions on plain ints.
"""

from __future__ import annotations

__all__ = ["cdiv", "next_pow2"]


def cdiv(a: int, b: int) -> int:
    """Ceiling of a / b for ints (b > 0)."""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
