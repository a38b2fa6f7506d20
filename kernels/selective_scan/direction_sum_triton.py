"""Triton kernel of `direction_sum.add_direction_sum`: dest += sum over K directions of src, one (BLOCK_D channels x
BLOCK_L tokens) tile of one sample per program, the K source tiles added in float32 and the result rounded once,
every tensor through its own strides."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..intmath import cdiv
from ..launch import fast_launch
from .gate_triton import _tile

__all__ = ["launch"]


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "L"])
def _add_direction_sum_kernel(
    dest_ptr, src_ptr, K, dim, L, sd_b, sd_d, sd_l, ss_b, ss_k, ss_d, ss_l,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    b, d, t, m = _tile(tl.program_id(0), dim, L, BLOCK_D, BLOCK_L)
    dest = dest_ptr + b * sd_b + d * sd_d + t * sd_l
    acc = tl.load(dest, mask=m, other=0.0).to(tl.float32)
    src = src_ptr + b * ss_b + d * ss_d + t * ss_l
    for k in range(K):
        acc += tl.load(src + k * ss_k, mask=m, other=0.0).to(tl.float32)
    tl.store(dest, acc.to(dest_ptr.dtype.element_ty), mask=m)


def launch(dest: torch.Tensor, src: torch.Tensor, block_d: int, block_l: int, warps: int) -> None:
    batch, dim, L = dest.shape
    _add_direction_sum_kernel[(batch * cdiv(dim, block_d) * cdiv(L, block_l),)](
        dest, src, src.shape[1], dim, L, *dest.stride(), *src.stride(),
        BLOCK_D=block_d, BLOCK_L=block_l, num_warps=warps,
    )
