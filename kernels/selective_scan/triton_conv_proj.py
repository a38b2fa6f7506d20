"""The Mamba mixer's conv and both projections in one kernel, for inference: u, x_dbl and delta from x.

Per direction k over token-major x (batch, L, C) (a slice of in_proj's output, read through its strides):

    u[b, k, c, t]     = silu(bias[k, c] + sum_j taps[k, c, j] x[b, t + offset_k + j, c])   (zero-padded x)
    x_dbl[b, k, m, t] = sum_c w_x[k, m, c] u[b, k, c, t]                 (m < M = R + 2N: dt rows, then B, C)
    delta[b, k, c, t] = sum_r w_dt[k, c, r] x_dbl[b, k, r, t]            (r < R)

which is `depthwise_conv1d(..., silu=True)` followed by `projected._project_into` (the x_proj matmul and
the dt_proj one) as three launches and two reads of u from memory. Here one program takes BL tokens of one
batch row and direction through all C channels: for each channel block it computes the conv tile, stores u,
and adds the tile's product with x_proj's weights into the x_dbl accumulators (two `tl.dot`s: the dt rows, the
B / C rows); then it stores x_dbl and multiplies its dt rows, rounded to the stored dtype as the separate
path reads them, by dt_proj's weights block by block into delta. The products take the stored (rounded) u
and x_dbl values, as the matmuls of the separate path do: half inputs widened to float32 and multiplied in
TF32, which holds them exactly (also the interpreter's path), float32 inputs in IEEE float32; sums in float32.

Without autograd (the training forward keeps the conv op, whose backward recomputes from x). Outputs in the
layouts the op gives them (`layout` rows, token-major or channel-major): any strides.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..conv1d.triton_conv1d import _pre
from ..env import interpreting
from ..intmath import cdiv, next_pow2
from ..launch import fast_launch

__all__ = ["DTYPES", "MAX_DIRECTIONS", "MAX_ROWS", "conv_project"]

DTYPES = (torch.bfloat16, torch.float16, torch.float32)
MAX_DIRECTIONS = 2  # the offsets as two scalars (Vim's causal and anti-causal tap sets)
MAX_ROWS = 64  # R and 2N each padded to a power of two up to this (x_dbl accumulators in registers)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["o0", "o1"])
def _conv_proj_fwd(
    x, w, bias, o0, o1, wx, wdt, u, xdbl, delta,
    L, C, K, R, S,
    sxb, sxl, sxc, swk, swc, swj, sbk, sbc,
    swxk, swxm, swxc, swdk, swdc, swdr,
    sub, suk, suc, sul, sqb, sqk, sqm, sql, seb, sek, sec, sel,
    W: tl.constexpr, HAS_BIAS: tl.constexpr, BL: tl.constexpr, BC: tl.constexpr, RP: tl.constexpr,
    SP: tl.constexpr, PREC: tl.constexpr, WIDEN: tl.constexpr,
):
    """One (BL tokens, batch row, direction) tile; R dt rows and S = 2N B / C rows of x_dbl, padded to RP, SP."""
    pid_l, pid_bk = tl.program_id(0), tl.program_id(1)
    b = (pid_bk // K).to(tl.int64)
    k = pid_bk % K
    k64 = k.to(tl.int64)
    t = pid_l * BL + tl.arange(0, BL)
    tmask = t < L
    shift = tl.where(k == 0, o0, o1)
    x_row = x + b * sxb
    rr = tl.arange(0, RP)
    ss = tl.arange(0, SP)
    rmask, smask = rr < R, ss < S
    acc_dt = tl.zeros((BL, RP), dtype=tl.float32)
    acc_bc = tl.zeros((BL, SP), dtype=tl.float32)
    u_tile = u + b * sub + k64 * suk + t[:, None] * sul
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        cmask = c < C
        pre = _pre(x_row, sxl, sxc, w + k * swk, swc, swj, bias + k * sbk, sbc, t, c, cmask, L, shift, W, HAS_BIAS)
        uq = (pre * tl.sigmoid(pre)).to(u.dtype.element_ty)
        m = tmask[:, None] & cmask[None, :]
        tl.store(u_tile + c[None, :] * suc, uq, mask=m)
        uf = tl.where(m, uq, 0.0)  # the stored values; nothing from past L or C
        w_c = wx + k64 * swxk + c[:, None] * swxc
        w_dt = tl.load(w_c + rr[None, :] * swxm, mask=cmask[:, None] & rmask[None, :], other=0.0)
        w_bc = tl.load(w_c + (R + ss)[None, :] * swxm, mask=cmask[:, None] & smask[None, :], other=0.0)
        if WIDEN:
            uf = uf.to(tl.float32)
            w_dt = w_dt.to(tl.float32)
            w_bc = w_bc.to(tl.float32)
        acc_dt = tl.dot(uf, w_dt, acc_dt, input_precision=PREC)
        acc_bc = tl.dot(uf, w_bc, acc_bc, input_precision=PREC)
    q_tile = xdbl + b * sqb + k64 * sqk + t[:, None] * sql
    dtq = acc_dt.to(xdbl.dtype.element_ty)
    tl.store(q_tile + rr[None, :] * sqm, dtq, mask=tmask[:, None] & rmask[None, :])
    tl.store(q_tile + (R + ss)[None, :] * sqm, acc_bc.to(xdbl.dtype.element_ty), mask=tmask[:, None] & smask[None, :])
    dtf = dtq.to(tl.float32) if WIDEN else dtq  # as stored (zeros past R: their weights load as zeros too)
    e_tile = delta + b * seb + k64 * sek + t[:, None] * sel
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        cmask = c < C
        w_t = tl.load(wdt + k64 * swdk + c[None, :] * swdc + rr[:, None] * swdr, mask=rmask[:, None] & cmask[None, :],
                      other=0.0)
        d = tl.dot(dtf, w_t.to(tl.float32) if WIDEN else w_t, input_precision=PREC)
        tl.store(e_tile + c[None, :] * sec, d.to(delta.dtype.element_ty), mask=tmask[:, None] & cmask[None, :])


def supports(x: torch.Tensor, K: int, R: int, N: int) -> bool:
    """Whether `conv_project` takes these sizes and x's dtype."""
    return (x.dtype in DTYPES and 1 <= K <= MAX_DIRECTIONS and 1 <= R <= MAX_ROWS and 1 <= 2 * N <= MAX_ROWS)


# (tokens, channels, warps, stages) per program for u stored token-major / channel-major. H200, bf16, both directions
# (docs/bench/h200-2026-12-01-s32, call 2, do_bench): Vim-Ti at 1248 (batch 8) token-major 146.5 us (64 x 64, three
# stages; 165-240 for the other tiles), channel-major 236.9 us (128 x 32; 64 x 64: 846: the transposed stores); Vim-S
# and Vim-Ti at 224 (batch 128, token-major) 188.8 and 98.3 us
TILES_TOKEN_MAJOR = (64, 64, 4, 3)
TILES_CHANNEL_MAJOR = (128, 32, 4, 2)


def conv_project(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None, offsets, w_x: torch.Tensor,
                 w_dt: torch.Tensor, u: torch.Tensor, x_dbl: torch.Tensor, delta: torch.Tensor,
                 tiles: tuple[int, int, int, int] | None = None, widen: bool | None = None) -> None:
    """Writes u (batch, K, C, L), x_dbl (batch, K, R + 2N, L) and delta (batch, K, C, L), any strides, from x
    (batch, L, C), taps (K, C, W), bias (K, C) or None, K offsets, w_x (K, R + 2N, C), w_dt (K, C, R) (see the
    module docstring). Shapes and dtypes as `projected.conv_scan_directions` checks them."""
    batch, L, C = x.shape
    K, _, W = taps.shape
    M, R = w_x.shape[1], w_dt.shape[-1]
    S = M - R
    if u.numel() == 0:
        return
    if tiles is None:
        tiles = TILES_TOKEN_MAJOR if u.stride(-2) == 1 else TILES_CHANNEL_MAJOR
    block_l, block_c, num_warps, num_stages = tiles
    b = bias if bias is not None else taps
    o = tuple(offsets) + (0,) * (MAX_DIRECTIONS - len(offsets))
    prec = "ieee" if x.dtype == torch.float32 else "tf32"
    if widen is None:  # half products on the tensor cores as they are; the interpreter's half dot is wrong
        widen = x.dtype == torch.float32 or interpreting()
    _conv_proj_fwd[(cdiv(L, block_l), batch * K)](
        x, taps, b, *o, w_x, w_dt, u, x_dbl, delta, L, C, K, R, S,
        *x.stride(), *taps.stride(), b.stride(0), b.stride(-1), *w_x.stride(), *w_dt.stride(),
        *u.stride(), *x_dbl.stride(), *delta.stride(),
        W=W, HAS_BIAS=bias is not None, BL=block_l, BC=block_c, RP=max(16, next_pow2(R)),
        SP=max(16, next_pow2(S)), PREC=prec, WIDEN=widen, num_warps=num_warps, num_stages=num_stages,
    )
