"""A gate shared by every direction, applied outside the scan: out = y * silu(z) and its gradients.

With one gate z for all K directions, out = sum_k y_k * silu(z) = y * silu(z) where y is the ungated scan
output (the directions already summed). `projected_scan` runs the scan without z and gates its output
here, keeping y (in the scan's output dtype) for the backward, which then needs neither z nor a
recomputation of y inside the scan's kernels:

    dy = dout * silu(z)                          the scan backward's dout (float32 at least)
    dz = dout * y * s * (1 + z (1 - s))          s = sigmoid(z), in z's layout and dtype

mamba_ssm keeps its y the same way (its fused backward reads the saved forward output). Measured on
one H200 at Vim-S's shape (batch 128, D 768, L 197, N 16, both directions, bf16; the
`docs/bench/h200-2026-11-30-s20` records): the scan kernels with z took 1.436 ms forward and 3.747 ms
backward (carry passes included), without it 1.055 and 3.205.

The Triton kernels read and write through strides (y channel-major from the scan, z and out token-major
slices of the Linears' tensors), one (channels x tokens) tile per program; elsewhere the same formulas
run as torch ops.
"""

from __future__ import annotations

import torch

from .op import new_like_layout
from .reference import compute_dtype

__all__ = ["gate_forward", "gate_backward"]

# H200, bf16, (128, 768, 197) and (8, 384, 6085), y channel-major, z token-major: of six tile shapes,
# 128 channels x 32 tokens with 4 warps was the fastest forward and backward at both (91 / 159 us at Vim-S)
_BLOCK_D, _BLOCK_L, _WARPS = 128, 32, 4


def _like(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An empty (batch, D, L) tensor laid out like z, by the op's rule (`op.new_like_layout`: token-major when
    z is, as a slice of a Linear's output)."""
    batch, dim, L = z.shape
    return new_like_layout(z.unsqueeze(1), (batch, 1, dim, L), dtype)[:, 0]


def _kernels():
    from . import gate_triton

    return gate_triton


def gate_forward(y: torch.Tensor, z: torch.Tensor, use_triton: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """out = y * silu(z) in y's dtype, into `out` (any strides) or (None) a new tensor laid out like z
    (`op.new_like_layout`); y, z (batch, D, L)."""
    if out is None:
        out = _like(z, y.dtype)
    if out.numel() == 0:
        return out
    if use_triton:
        _kernels().launch_forward(y, z, out, _BLOCK_D, _BLOCK_L, _WARPS)
        return out
    c = compute_dtype(y)
    zc = z.to(c)
    return out.copy_(y.to(c) * zc * torch.sigmoid(zc))


def gate_backward(
    dout: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor, need_dz: bool, use_triton: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """dy (float32 at least, contiguous (batch, D, L)) and, with ``need_dz``, dz (z's dtype, laid out like z);
    y (the ungated output) is read for dz only and may be None without it."""
    c = compute_dtype(dout)
    dy = dout.new_empty(z.shape, dtype=c)
    dz = _like(z, z.dtype) if need_dz else None
    if dy.numel() == 0:
        return dy, dz
    if use_triton:
        _kernels().launch_backward(dout, y, z, dy, dz, _BLOCK_D, _BLOCK_L, _WARPS)
        return dy, dz
    zc, dc = z.to(c), dout.to(c)
    s = torch.sigmoid(zc)
    torch.mul(dc, zc * s, out=dy)
    if dz is not None:
        dz.copy_(dc * y.to(c) * s * (1 + zc * (1 - s)))
    return dy, dz
