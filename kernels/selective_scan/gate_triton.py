"""Triton kernels of `gate` (out = y * silu(z) and its gradients): one (BLOCK_D channels x BLOCK_L tokens)
tile of one sample per program, every tensor through its own strides (Triton's coalescing gives each
load and store the order of its contiguous axis, so a channel-major y and a token-major z meet in one
tile)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..intmath import cdiv
from ..launch import fast_launch

__all__ = ["launch_forward", "launch_backward"]


@triton.jit
def _tile(pid, dim, L, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    """The sample, (channel, token) offsets (int64) and mask of program `pid`."""
    n_l = tl.cdiv(L, BLOCK_L)
    n_d = tl.cdiv(dim, BLOCK_D)
    lb = pid % n_l
    db = (pid // n_l) % n_d
    b = (pid // (n_l * n_d)).to(tl.int64)
    offs_d = (db * BLOCK_D + tl.arange(0, BLOCK_D)).to(tl.int64)[:, None]
    offs_l = (lb * BLOCK_L + tl.arange(0, BLOCK_L)).to(tl.int64)[None, :]
    return b, offs_d, offs_l, (offs_d < dim) & (offs_l < L)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["dim", "L"])
def _gate_fwd_kernel(
    y_ptr, z_ptr, out_ptr, dim, L,
    sy_b, sy_d, sy_l, sz_b, sz_d, sz_l, so_b, so_d, so_l,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    b, d, t, m = _tile(tl.program_id(0), dim, L, BLOCK_D, BLOCK_L)
    y = tl.load(y_ptr + b * sy_b + d * sy_d + t * sy_l, mask=m, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + b * sz_b + d * sz_d + t * sz_l, mask=m, other=0.0).to(tl.float32)
    out = y * z * tl.sigmoid(z)
    tl.store(out_ptr + b * so_b + d * so_d + t * so_l, out.to(out_ptr.dtype.element_ty), mask=m)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["dim", "L"])
def _gate_bwd_kernel(
    dout_ptr, y_ptr, z_ptr, dy_ptr, dz_ptr, dim, L,
    sdo_b, sdo_d, sdo_l, sy_b, sy_d, sy_l, sz_b, sz_d, sz_l, sdy_b, sdy_d, sdy_l, sdz_b, sdz_d, sdz_l,
    NEED_DZ: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    b, d, t, m = _tile(tl.program_id(0), dim, L, BLOCK_D, BLOCK_L)
    dout = tl.load(dout_ptr + b * sdo_b + d * sdo_d + t * sdo_l, mask=m, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + b * sz_b + d * sz_d + t * sz_l, mask=m, other=0.0).to(tl.float32)
    s = tl.sigmoid(z)
    tl.store(dy_ptr + b * sdy_b + d * sdy_d + t * sdy_l, dout * z * s, mask=m)
    if NEED_DZ:
        y = tl.load(y_ptr + b * sy_b + d * sy_d + t * sy_l, mask=m, other=0.0).to(tl.float32)
        dz = dout * y * s * (1.0 + z * (1.0 - s))
        tl.store(dz_ptr + b * sdz_b + d * sdz_d + t * sdz_l, dz.to(dz_ptr.dtype.element_ty), mask=m)


def _grid(y: torch.Tensor, block_d: int, block_l: int) -> tuple[int]:
    batch, dim, L = y.shape
    return (batch * cdiv(dim, block_d) * cdiv(L, block_l),)


def launch_forward(y, z, out, block_d: int, block_l: int, warps: int) -> None:
    _gate_fwd_kernel[_grid(y, block_d, block_l)](
        y, z, out, y.shape[1], y.shape[2], *y.stride(), *z.stride(), *out.stride(),
        BLOCK_D=block_d, BLOCK_L=block_l, num_warps=warps,
    )


def launch_backward(dout, y, z, dy, dz, block_d: int, block_l: int, warps: int) -> None:
    need_dz = dz is not None
    dz_ = dz if need_dz else dy  # placeholders of the unused pointers
    y_ = y if need_dz else dout
    _gate_bwd_kernel[_grid(z, block_d, block_l)](
        dout, y_, z, dy, dz_, z.shape[1], z.shape[2],
        *dout.stride(), *y_.stride(), *z.stride(), *dy.stride(), *dz_.stride(),
        NEED_DZ=need_dz, BLOCK_D=block_d, BLOCK_L=block_l, num_warps=warps,
    )
