"""Batched products with a thin inner dimension: out[k] = w[k] @ x[k] for w (K, M, R), x (K, R, N), R <= 64.

The projected scan's dt_proj (`projected._delta_into`): R is the dt rank (12 for Vim-Ti, 24 for Vim-S), M the
channels and N every token of the batch, so the product is a write of the (M, N) output with next to no
arithmetic. Where R's rows are not a multiple of 16 bytes (R = 12 in bfloat16) cuBLAS takes its unaligned
kernels and runs it at a fraction of that write's speed (H200, bf16, both directions; docs/bench/h200-2026-12-01-s30,
call 2): (2, 384, 12) @ (2, 12, 48680) (Vim-Ti at 1248, batch 8) 76.4 us, here 37.1; (2, 384, 12) @ (2, 12, 25216)
(Vim-Ti training, batch 128) 28.0 against 17.6. With R = 24 (Vim-S) cuBLAS was the faster (31.0 against 38.3 us),
so `projected` calls this kernel only for unaligned rows. Here one program computes a
(BLOCK_M, BLOCK_N) tile of one direction with one `tl.dot` over R padded to a power of two >= 16 (zeros past R),
exact products of the half inputs summed in float32, and stores it in out's dtype through out's strides. Any
strides for the three tensors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..intmath import cdiv, next_pow2
from ..launch import fast_launch, on_device_of

__all__ = ["DTYPES", "MAX_R", "thin_bmm"]

MAX_R = 64  # wider inner dimensions are real matmuls: cuBLAS
DTYPES = (torch.bfloat16, torch.float16)  # float32 would need full-precision products (no tensor cores): cuBLAS


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _thin_bmm(
    w, x, out, M, N, R,
    swk, swm, swr, sxk, sxr, sxn, sok, som, son,
    RP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_n, pid_m, k = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rr = tl.arange(0, RP)
    mm, mn, mr = rm < M, rn < N, rr < R
    wt = tl.load(w + k * swk + rm[:, None] * swm + rr[None, :] * swr, mask=mm[:, None] & mr[None, :], other=0.0)
    xt = tl.load(x + k * sxk + rr[:, None].to(tl.int64) * sxr + rn[None, :].to(tl.int64) * sxn, mask=mr[:, None] & mn[None, :],
                 other=0.0)
    # half inputs widened to float32 are exact in TF32 (10 mantissa bits >= bfloat16's 7 and float16's 10): the
    # products are exact and summed in float32 (also under the interpreter, whose bfloat16 dot is wrong)
    acc = tl.dot(wt.to(tl.float32), xt.to(tl.float32), input_precision="tf32")
    dst = out + k * sok + rm[:, None].to(tl.int64) * som + rn[None, :].to(tl.int64) * son
    tl.store(dst, acc.to(out.dtype.element_ty), mask=mm[:, None] & mn[None, :])


def thin_bmm(w: torch.Tensor, x: torch.Tensor, out: torch.Tensor, block_m: int = 32, block_n: int = 256,
             num_warps: int = 4) -> torch.Tensor:
    """out[k] = w[k] @ x[k] for every k, written into out (K, M, N) through its strides; w (K, M, R), x (K, R, N)
    in out's dtype (bfloat16 or float16), 1 <= R <= MAX_R. Returns out."""
    K, M, R = w.shape
    N = x.shape[-1]
    if tuple(x.shape) != (K, R, N) or tuple(out.shape) != (K, M, N):
        raise ValueError(f"thin_bmm: shapes w {tuple(w.shape)}, x {tuple(x.shape)}, out {tuple(out.shape)}: expected "
                         "(K, M, R), (K, R, N), (K, M, N)")
    if not 1 <= R <= MAX_R:
        raise ValueError(f"thin_bmm: the inner dimension R={R} must be in [1, {MAX_R}]")
    if not (w.dtype == x.dtype == out.dtype) or out.dtype not in DTYPES:
        raise ValueError(f"thin_bmm: w, x and out must share one of bfloat16 / float16, got {w.dtype}, "
                         f"{x.dtype}, {out.dtype}")
    if out.numel() == 0:
        return out
    with on_device_of(out):
        _thin_bmm[(cdiv(N, block_n), cdiv(M, block_m), K)](
            w, x, out, M, N, R, *w.stride(), *x.stride(), *out.stride(),
            RP=max(16, next_pow2(R)), BLOCK_M=block_m, BLOCK_N=block_n,
            num_warps=num_warps,
        )
    return out
