"""dest += the sum over the directions of a per-direction gradient, in one pass.

A tensor shared by K directions (SS2D's tokens, the u of its four scans) gets K per-direction gradients from the
scan's backward, (batch, K, D, L), which join the gradient from elsewhere (the x_proj product). As
``dest += src.sum(1)`` that is a reduction over the middle axis, written out, then an add that reads it back (and
two roundings). Here one pass reads the K source tiles and dest, adds in float32 and writes dest once, rounded once;
the CUDA path is a Triton kernel (`direction_sum_triton`), elsewhere the same sum runs as torch ops. One H200, bf16,
batch 128, VMamba-T's four SS2D shapes (D, L) = (96, 3136) / (192, 784) / (384, 196) / (768, 49): 170 / 96 / 51 /
32 us against 1155 / 625 / 237 / 116 for the reduction and the add (`docs/bench/h200-2026-11-30-s27/`).
"""

from __future__ import annotations

import torch

from .reference import compute_dtype

__all__ = ["add_direction_sum"]

# H200, bf16, VMamba-T's four SS2D shapes (token-major): of nine tile shapes 128 channels x 16 tokens with 4 warps was
# the fastest at each, 2.3-2.7 TB/s (170 / 96 / 51 / 32 us against 260 / 140 / 68 / 42 at 128 x 32)
_BLOCK_D, _BLOCK_L, _WARPS = 128, 16, 4


def add_direction_sum(dest: torch.Tensor, src: torch.Tensor, use_triton: bool) -> torch.Tensor:
    """dest (batch, D, L) += src (batch, K, D, L) summed over K, both through any strides (dest written in place);
    the sum in float32 at least (float64 for float64), rounded once into dest's dtype. Returns dest."""
    if src.dim() != 4 or dest.dim() != 3 or src.shape[:1] + src.shape[2:] != dest.shape:
        raise ValueError(f"add_direction_sum: `src` {tuple(src.shape)} must be (batch, K, D, L) with (batch, D, L) "
                         f"= the shape of `dest` {tuple(dest.shape)}")
    if dest.numel() == 0:
        return dest
    if use_triton:
        from . import direction_sum_triton

        direction_sum_triton.launch(dest, src, _BLOCK_D, _BLOCK_L, _WARPS)
        return dest
    c = compute_dtype(dest)
    return dest.copy_(dest.to(c) + src.sum(1, dtype=c))
