"""Storage of the channel-major (..., L) activations the ops write: rows of a multiple of PAD_TOKENS tokens.

cuBLAS picks its fast matmul kernels only when every operand's leading dimension is a multiple of 16
bytes; a channel-major (batch, K, D, L) tensor has the token count L as its leading dimension, and
L = 197 (Vim at 224) or 6085 (at 1248) sends the projected scan's matmuls to `align1` fallback kernels
(NOTES.md of the selective scan). With ``VSSM_PAD_TOKENS=8`` the conv op's channel-major output and the
scan's channel-major tensors (x_dbl, delta and the gradients) are views of storage whose rows are
rounded up to a multiple of 8 tokens; the kernels read them through their strides. Off (1) by default:
on the H200 it gained nothing measurable end to end (NOTES.md of the selective scan).
"""

from __future__ import annotations

import os

import torch


def _from_env() -> int:
    raw = os.environ.get("VSSM_PAD_TOKENS", "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"VSSM_PAD_TOKENS={raw!r}: expected a positive integer (rows padded to a multiple of it, "
                         "e.g. 8; 1 = no padding)")
    return value


PAD_TOKENS = _from_env()


def padded_len(L: int) -> int:
    """The row length (in tokens) of channel-major storage for L tokens."""
    return -(-L // PAD_TOKENS) * PAD_TOKENS if PAD_TOKENS > 1 else L


def new_rows(like: torch.Tensor, shape: tuple, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An empty tensor of `shape` (..., L), its rows `padded_len(L)` elements apart (a view of the first L
    columns of the padded storage; contiguous when nothing is padded)."""
    L = shape[-1]
    Lp = padded_len(L)
    t = like.new_empty((*shape[:-1], Lp), dtype=dtype if dtype is not None else like.dtype)
    return t if Lp == L else t[..., :L]
