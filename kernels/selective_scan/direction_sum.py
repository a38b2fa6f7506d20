"""dest += the sum over the directions of a per-direction gradient, in one pass.

A tensor shared by K directions (SS2D's tokens, the u of its four scans) gets K per-direction gradients from the
scan's backward, (batch, K, D, L), which join the gradient from elsewhere (the x_proj product). As
``dest += src.sum(1)`` that is a reduction over the middle axis, written out, then an add that reads it back: on one
H200 (VMamba-T, bf16, batch 128) PyTorch's reduction ran at ~1 TB/s, 0.32 ms per block. Here one pass reads the K
source tiles and dest, adds in float32 and writes dest once, rounded once; the CUDA path is a Triton kernel
(`direction_sum_triton`), elsewhere the same sum runs as torch ops.
"""

from __future__ import annotations

import torch

from .reference import compute_dtype

__all__ = ["add_direction_sum"]

_BLOCK_D, _BLOCK_L, _WARPS = 128, 32, 4


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
