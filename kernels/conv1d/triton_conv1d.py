"""Triton kernels of the multi-tap depthwise conv1d (see `op.py` for the definition).

Token-major throughout: x is (batch, L, C) read through its strides (a slice of a Linear's output),
out and dout are (batch, K, L, C); channels are the contiguous, vectorised axis of every tile.

Forward: one program per (token block, channel block, batch row x direction); W shifted tile loads.
Backward: one program per (token chunk, channel block, batch row), looping over the chunk's token
blocks and the K directions. The pre-activation is recomputed from x (nothing but x is kept from the
forward). dx[t] gathers g_k[t - off_k - j] w_k[j] over directions k and taps j, where
g_k = dout_k * silu'(pre_k), so g is recomputed at the W shifted positions (the shifted x tiles are
the same 2W - 1 for every k and j, and stay in L1). dw and dbias are per-program partial sums over the
chunk's tokens, reduced afterwards in a fixed order (deterministic).
"""

from __future__ import annotations

import dataclasses

import torch
import triton
import triton.language as tl


@triton.jit
def _pre(x_row, sxl, sxc, w_k, swc, swj, bias_k, t, c, cmask, L, shift, W: tl.constexpr, HAS_BIAS: tl.constexpr):
    """bias + sum_j w[j] x[t + shift + j] for the tile (t, c), float32, zero-padded outside [0, L)."""
    acc = tl.zeros((t.shape[0], c.shape[0]), dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_k + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    for j in tl.static_range(W):
        s = t + shift + j
        m = ((s >= 0) & (s < L))[:, None] & cmask[None, :]
        xv = tl.load(x_row + s[:, None] * sxl + c[None, :] * sxc, mask=m, other=0.0).to(tl.float32)
        wv = tl.load(w_k + c * swc + j * swj, mask=cmask, other=0.0).to(tl.float32)
        acc += xv * wv[None, :]
    return acc


@triton.jit
def _conv_fwd(
    x, w, bias, offs, out,
    L, C, K,
    sxb, sxl, sxc, swk, swc, swj, sbk, sbc, sob, sok, sol, soc,
    W: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, BL: tl.constexpr, BC: tl.constexpr,
):
    pid_l, pid_c, pid_bk = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b = pid_bk // K
    k = pid_bk % K
    t = pid_l * BL + tl.arange(0, BL)
    c = pid_c * BC + tl.arange(0, BC)
    cmask = c < C
    shift = tl.load(offs + k)
    acc = _pre(x + b.to(tl.int64) * sxb, sxl, sxc, w + k * swk, swc, swj, bias + k * sbk, t, c, cmask, L, shift,
               W, HAS_BIAS)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    m = (t < L)[:, None] & cmask[None, :]
    dst = out + b.to(tl.int64) * sob + k * sok + t[:, None] * sol + c[None, :] * soc
    tl.store(dst, acc.to(out.dtype.element_ty), mask=m)


@triton.jit
def _grad_pre(x_row, sxl, sxc, w_k, swc, swj, bias_k, do_row, sdl, sdc, p, c, cmask, L, shift,
              W: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr):
    """dout * act'(pre) at the positions p (zero outside [0, L)), float32."""
    pm = ((p >= 0) & (p < L))[:, None] & cmask[None, :]
    g = tl.load(do_row + p[:, None] * sdl + c[None, :] * sdc, mask=pm, other=0.0).to(tl.float32)
    if SILU:
        pre = _pre(x_row, sxl, sxc, w_k, swc, swj, bias_k, p, c, cmask, L, shift, W, HAS_BIAS)
        sig = tl.sigmoid(pre)
        g = g * sig * (1.0 + pre * (1.0 - sig))
    return g


@triton.jit
def _conv_bwd(
    x, w, bias, offs, dout, dx, dw_part, db_part,
    L, C, K, n_chunks,
    sxb, sxl, sxc, swk, swc, swj, sbk, sbc, sdb, sdk, sdl, sdc, sgb, sgl, sgc,
    W: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, BL: tl.constexpr, BC: tl.constexpr,
    CHUNK: tl.constexpr,
):
    pid_l, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c = pid_c * BC + tl.arange(0, BC)
    cmask = c < C
    b64 = b.to(tl.int64)
    x_row = x + b64 * sxb
    # partial sums of this program: dw_part[b, chunk, k, j, c], db_part[b, chunk, k, c] (float32, contiguous)
    part = b64 * n_chunks + pid_l
    for l0 in range(pid_l * CHUNK, tl.minimum(pid_l * CHUNK + CHUNK, L), BL):
        t = l0 + tl.arange(0, BL)
        dxa = tl.zeros((BL, BC), dtype=tl.float32)
        for k in range(K):
            shift = tl.load(offs + k)
            w_k = w + k * swk
            bias_k = bias + k * sbk
            do_row = dout + b64 * sdb + k * sdk
            for j in tl.static_range(W):
                g = _grad_pre(x_row, sxl, sxc, w_k, swc, swj, bias_k, do_row, sdl, sdc, t - shift - j, c, cmask,
                              L, shift, W, HAS_BIAS, SILU)
                wv = tl.load(w_k + c * swc + j * swj, mask=cmask, other=0.0).to(tl.float32)
                dxa += g * wv[None, :]
            g = _grad_pre(x_row, sxl, sxc, w_k, swc, swj, bias_k, do_row, sdl, sdc, t, c, cmask, L, shift,
                          W, HAS_BIAS, SILU)
            pk = (part * K + k) * W
            for j in tl.static_range(W):
                s = t + shift + j
                m = ((s >= 0) & (s < L))[:, None] & cmask[None, :]
                xv = tl.load(x_row + s[:, None] * sxl + c[None, :] * sxc, mask=m, other=0.0).to(tl.float32)
                dst = dw_part + (pk + j) * C + c
                tl.store(dst, tl.load(dst, mask=cmask, other=0.0) + tl.sum(g * xv, axis=0), mask=cmask)
            if HAS_BIAS:
                dst = db_part + (part * K + k) * C + c
                tl.store(dst, tl.load(dst, mask=cmask, other=0.0) + tl.sum(g, axis=0), mask=cmask)
        m = (t < L)[:, None] & cmask[None, :]
        tl.store(dx + b64 * sgb + t[:, None] * sgl + c[None, :] * sgc, dxa.to(dx.dtype.element_ty), mask=m)


@dataclasses.dataclass(frozen=True)
class ConvTiles:
    """Tile sizes (tokens x channels per block; the backward's tokens per program); tests pass small ones."""

    fwd_BL: int = 32
    fwd_BC: int = 128
    fwd_warps: int = 4
    bwd_BL: int = 32
    bwd_BC: int = 64
    bwd_warps: int = 4
    bwd_chunk: int = 256


DEFAULT_TILES = ConvTiles()


def _offsets(offsets: tuple[int, ...], device) -> torch.Tensor:
    return torch.tensor(offsets, dtype=torch.int32, device=device)


def triton_conv_forward(x, weight, bias, offsets, silu: bool, tiles: ConvTiles = DEFAULT_TILES) -> torch.Tensor:
    """x (batch, L, C), weight (K, C, W), bias (K, C) or None -> out (batch, K, L, C) in x's dtype."""
    batch, L, C = x.shape
    K, _, W = weight.shape
    out = x.new_empty((batch, K, L, C))
    if out.numel() == 0:
        return out
    b = bias if bias is not None else weight
    grid = (triton.cdiv(L, tiles.fwd_BL), triton.cdiv(C, tiles.fwd_BC), batch * K)
    _conv_fwd[grid](
        x, weight, b, _offsets(offsets, x.device), out, L, C, K,
        *x.stride(), *weight.stride(), b.stride(0), b.stride(-1), *out.stride(),
        W=W, HAS_BIAS=bias is not None, SILU=silu, BL=tiles.fwd_BL, BC=tiles.fwd_BC, num_warps=tiles.fwd_warps,
    )
    return out


def triton_conv_backward(dout, x, weight, bias, offsets, silu: bool, tiles: ConvTiles = DEFAULT_TILES):
    """Gradients (dx (batch, L, C) in x's dtype, dweight (K, C, W), dbias (K, C) or None) in float32 sums."""
    batch, L, C = x.shape
    K, _, W = weight.shape
    dx = x.new_empty((batch, L, C))
    n_chunks = triton.cdiv(L, tiles.bwd_chunk)
    dw_part = torch.zeros((batch, n_chunks, K, W, C), dtype=torch.float32, device=x.device)
    db_part = torch.zeros((batch, n_chunks, K, C), dtype=torch.float32, device=x.device) if bias is not None else None
    if x.numel() and dout.numel():
        b = bias if bias is not None else weight
        grid = (n_chunks, triton.cdiv(C, tiles.bwd_BC), batch)
        _conv_bwd[grid](
            x, weight, b, _offsets(offsets, x.device), dout, dx, dw_part,
            db_part if db_part is not None else dw_part,
            L, C, K, n_chunks,
            *x.stride(), *weight.stride(), b.stride(0), b.stride(-1), *dout.stride(), *dx.stride(),
            W=W, HAS_BIAS=bias is not None, SILU=silu, BL=tiles.bwd_BL, BC=tiles.bwd_BC, CHUNK=tiles.bwd_chunk,
            num_warps=tiles.bwd_warps,
        )
    else:
        dx.zero_()
    dw = dw_part.sum(dim=(0, 1)).permute(0, 2, 1)
    db = db_part.sum(dim=(0, 1)) if db_part is not None else None
    return dx, dw, db
