"""Storage of the channel-major (..., L) activations the ops write: rows of a multiple of PAD_TOKENS tokens.

cuBLAS picks its fast matmul kernels only when every operand's leading dimension is a multiple of 16
bytes; a channel-major (batch, K, D, L) tensor has the token count L as its leading dimension, and
L = 197 (Vim at 224) or 6085 (at 1248) sends the projected scan's matmuls to `align1` fallback kernels
(NOTES.md of the selective scan). With ``VSSM_PAD_TOKENS=8`` the conv op's channel-major output and the
scan's channel-major tensors (x_dbl, delta and the gradients) are views of storage whose rows are
rounded up to a multiple of 8 tokens; the kernels read them through their strides. Off (1) by default:
on the H200 it gained nothing measurable end to end (NOTES.md of the selective scan).

Storage may also put the batch between the channels and the tokens (``batch_inner``): a (batch, K, D, L)
tensor stored (K, D, batch, L). Each (direction, channel) row is still L contiguous tokens, and the rows
of one direction form one (D, batch x L) matrix, so a projection over every token of the batch is one 2-D
matmul per direction (N = batch x L, cuBLAS's large-matrix kernels) rather than a batched matmul of
batch (M, L) matrices with the odd L as the leading dimension.
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


def new_rows(like: torch.Tensor, shape: tuple, dtype: torch.dtype | None = None,
             batch_inner: bool = False) -> torch.Tensor:
    """An empty tensor of `shape` (..., L), its rows `padded_len(L)` elements apart (a view of the first L
    columns of the padded storage; contiguous when nothing is padded). ``batch_inner``: `shape` is
    (batch, ..., L) and the storage (..., batch, L): the first axis moves next to the tokens."""
    return like.new_empty_strided(tuple(shape), row_strides(shape, batch_inner),
                                  dtype=dtype if dtype is not None else like.dtype)


def row_strides(shape: tuple, batch_inner: bool = False) -> tuple:
    """The strides `new_rows` gives a tensor of `shape`: the axes stored in order (with ``batch_inner`` the
    first one moved next to the last), the last one `padded_len(L)` elements per row."""
    n = len(shape)
    order = [*range(1, n - 1), 0, n - 1] if batch_inner and n >= 3 else list(range(n))
    strides = [0] * n
    step = 1
    for axis in reversed(order):
        strides[axis] = step
        step *= padded_len(shape[-1]) if axis == n - 1 else shape[axis]
    return tuple(strides)


def is_batch_inner(t: torch.Tensor) -> bool:
    """Whether a channel-major (batch, ..., D, L) tensor is stored with the batch between the channels and
    the tokens (`new_rows` with ``batch_inner``). A batch of one counts as not: both layouts coincide."""
    return t.dim() >= 3 and t.shape[0] > 1 and t.stride(-1) == 1 and t.stride(0) < t.stride(-2)


def _matrix_strides(batch: int, M: int, L: int, s_b: int, s_m: int, s_l: int) -> tuple[int, int] | None:
    """The (row, column) strides of a (batch, M, L) tensor with strides (s_b, s_m, s_l) seen as the (M, batch x L)
    matrix it is stored as, or None (see `token_matrix`)."""
    if L == 1:
        s_l = s_b
    elif batch > 1 and s_b != L * s_l:
        return None  # the batch's tokens are not one evenly spaced sequence
    n = batch * L
    if n == 1:
        s_l = max(M, 1)
    if M == 1:
        s_m = max(n, 1)
    if not ((s_l == 1 and s_m >= n) or (s_m == 1 and s_l >= M)):
        return None
    return s_m, s_l


def token_matrix(t: torch.Tensor) -> torch.Tensor | None:
    """A (batch, M, L) tensor as the (M, batch x L) matrix it is stored as (a view: outputs are written
    through it), or None when its strides allow no such matrix for a matmul. Two storages give one:
    channel-major rows with the batch inside them (row-major: each row batch x L contiguous tokens), and
    token-major with the batch outside the tokens and next to them (column-major: each token's M values
    contiguous, one token after the other, as `new_like_layout` stores token-major u of several directions).
    Batch-outer channel-major storage and padded rows give None."""
    batch, M, L = t.shape
    strides = _matrix_strides(batch, M, L, *t.stride())
    return None if strides is None else t.as_strided((M, batch * L), strides)


def direction_matrices(t: torch.Tensor) -> torch.Tensor | None:
    """A (batch, K, M, L) tensor as the K (M, batch x L) matrices of its directions, one (K, M, batch x L) view
    (`token_matrix` of each direction's slice; the slices lie a fixed stride apart, so one batched matmul takes
    them all), or None where `token_matrix` gives none. One view op: the matrices' strides come from t's."""
    batch, K, M, L = t.shape
    s_b, s_k, s_m, s_l = t.stride()
    strides = _matrix_strides(batch, M, L, s_b, s_m, s_l)
    return None if strides is None else t.as_strided((K, M, batch * L), (s_k, *strides))
