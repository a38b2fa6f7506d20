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

from ..intmath import cdiv, next_pow2
from ..launch import fast_launch
from .op import MAX_TAP_SETS, new_conv_out

_OFFS = [f"o{i}" for i in range(MAX_TAP_SETS)]  # the offsets as scalar arguments o0..o7 (`_offset_args`, `_pick`)


@triton.jit
def _tap(x_row, sxl, sxc, w_k, swc, swj, t, c, cmask, L, s0, j: tl.constexpr):
    """The x tile at tokens t + s0 + j (float32, zero outside [0, L)) and tap j's weights."""
    s = t + s0 + j
    m = ((s >= 0) & (s < L))[:, None] & cmask[None, :]
    xv = tl.load(x_row + s[:, None] * sxl + c[None, :] * sxc, mask=m, other=0.0).to(tl.float32)
    return xv, tl.load(w_k + c * swc + j * swj, mask=cmask, other=0.0).to(tl.float32)


@triton.jit
def _pre(x_row, sxl, sxc, w_k, swc, swj, bias_k, sbc, t, c, cmask, L, shift, W: tl.constexpr,
         HAS_BIAS: tl.constexpr):
    """bias + sum_j w[j] x[t + shift + j] for the tile (t, c), float32, zero-padded outside [0, L); the bias read
    through its channel stride sbc."""
    acc = tl.zeros((t.shape[0], c.shape[0]), dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_k + c * sbc, mask=cmask, other=0.0).to(tl.float32)[None, :]
    for j in tl.static_range(W):
        xv, wv = _tap(x_row, sxl, sxc, w_k, swc, swj, t, c, cmask, L, shift, j)
        acc += xv * wv[None, :]
    return acc


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=_OFFS)
def _conv_fwd(
    x, w, bias, o0, o1, o2, o3, o4, o5, o6, o7, out,
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
    shift = _pick(k, o0, o1, o2, o3, o4, o5, o6, o7)
    acc = _pre(x + b.to(tl.int64) * sxb, sxl, sxc, w + k * swk, swc, swj, bias + k * sbk, sbc, t, c, cmask, L, shift,
               W, HAS_BIAS)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    m = (t < L)[:, None] & cmask[None, :]
    # k in int64: with the tap sets stored outside the batch, k * sok passes 2**31 on large outputs
    dst = out + b.to(tl.int64) * sob + k.to(tl.int64) * sok + t[:, None] * sol + c[None, :] * soc
    tl.store(dst, acc.to(out.dtype.element_ty), mask=m)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=_OFFS)
def _conv_bwd_g(
    x, w, bias, o0, o1, o2, o3, o4, o5, o6, o7, dout, g, dw_part, db_part,
    L, C, K, n_chunks,
    sxb, sxl, sxc, swk, swc, swj, sbk, sbc, sdb, sdk, sdl, sdc,
    W: tl.constexpr, WP: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, BL: tl.constexpr,
    BC: tl.constexpr, CHUNK: tl.constexpr,
):
    """g_k = dout_k act'(pre_k) (float32, (batch, K, L, C) contiguous) and this chunk's partial dw, db.

    Up to four taps (every model's conv), each shifted x tile is loaded once per token block, for the
    pre-activation and for its tap's dw, which has an accumulator of its own; wider kernels reload the tiles
    for dw and pick the tap's row of one (WP, BL, BC) accumulator. H200, bf16: the four-tap form 13-20% faster
    at Vim's shapes (docs/bench/h200-2026-11-30-s26, v3)."""
    pid_l, pid_c, pid_bk = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b = pid_bk // K
    k = pid_bk % K
    c = pid_c * BC + tl.arange(0, BC)
    cmask = c < C
    b64 = b.to(tl.int64)
    x_row = x + b64 * sxb
    w_k = w + k * swk
    shift = _pick(k, o0, o1, o2, o3, o4, o5, o6, o7)
    jj = tl.arange(0, WP)
    # products summed over the chunk's token blocks elementwise; reduced over tokens once at the end
    if W <= 4:
        a0 = tl.zeros((BL, BC), dtype=tl.float32)
        a1 = tl.zeros((BL, BC), dtype=tl.float32)
        a2 = tl.zeros((BL, BC), dtype=tl.float32)
        a3 = tl.zeros((BL, BC), dtype=tl.float32)
        if HAS_BIAS:  # the pre-activation's bias, loaded once (wider kernels add it inside `_pre`)
            bk = tl.load(bias + k * sbk + c * sbc, mask=cmask, other=0.0).to(tl.float32)
    else:
        dw_acc = tl.zeros((WP, BL, BC), dtype=tl.float32)
    db_acc = tl.zeros((BL, BC), dtype=tl.float32)
    for l0 in range(pid_l * CHUNK, tl.minimum(pid_l * CHUNK + CHUNK, L), BL):
        t = l0 + tl.arange(0, BL)
        m = (t < L)[:, None] & cmask[None, :]
        gv = tl.load(dout + b64 * sdb + k.to(tl.int64) * sdk + t[:, None] * sdl + c[None, :] * sdc, mask=m, other=0.0)
        gv = gv.to(tl.float32)
        if W <= 4:
            x0, w0 = _tap(x_row, sxl, sxc, w_k, swc, swj, t, c, cmask, L, shift, 0)
            pre = x0 * w0[None, :]
            if W > 1:
                x1, w1 = _tap(x_row, sxl, sxc, w_k, swc, swj, t, c, cmask, L, shift, 1)
                pre += x1 * w1[None, :]
            if W > 2:
                x2, w2 = _tap(x_row, sxl, sxc, w_k, swc, swj, t, c, cmask, L, shift, 2)
                pre += x2 * w2[None, :]
            if W > 3:
                x3, w3 = _tap(x_row, sxl, sxc, w_k, swc, swj, t, c, cmask, L, shift, 3)
                pre += x3 * w3[None, :]
            if HAS_BIAS:
                pre += bk[None, :]
            if SILU:
                sig = tl.sigmoid(pre)
                gv = gv * sig * (1.0 + pre * (1.0 - sig))
            tl.store(g + (pid_bk.to(tl.int64) * L + t[:, None]) * C + c[None, :], gv, mask=m)
            a0 += gv * x0
            if W > 1:
                a1 += gv * x1
            if W > 2:
                a2 += gv * x2
            if W > 3:
                a3 += gv * x3
        else:
            if SILU:
                pre = _pre(x_row, sxl, sxc, w_k, swc, swj, bias + k * sbk, sbc, t, c, cmask, L, shift, W, HAS_BIAS)
                sig = tl.sigmoid(pre)
                gv = gv * sig * (1.0 + pre * (1.0 - sig))
            tl.store(g + (pid_bk.to(tl.int64) * L + t[:, None]) * C + c[None, :], gv, mask=m)
            for j in tl.static_range(W):
                xv, _ = _tap(x_row, sxl, sxc, w_k, swc, swj, t, c, cmask, L, shift, j)
                dw_acc += tl.where(jj[:, None, None] == j, (gv * xv)[None, :, :], 0.0)
        db_acc += gv
    part = (b64 * n_chunks + pid_l) * K + k  # dw_part[b, chunk, k, j, c], db_part[b, chunk, k, c]
    if W <= 4:
        row = dw_part + part * W * C + c
        tl.store(row, tl.sum(a0, axis=0), mask=cmask)
        if W > 1:
            tl.store(row + C, tl.sum(a1, axis=0), mask=cmask)
        if W > 2:
            tl.store(row + 2 * C, tl.sum(a2, axis=0), mask=cmask)
        if W > 3:
            tl.store(row + 3 * C, tl.sum(a3, axis=0), mask=cmask)
    else:
        tl.store(dw_part + (part * W + jj[:, None]) * C + c[None, :], tl.sum(dw_acc, axis=1),
                 mask=(jj < W)[:, None] & cmask[None, :])
    if HAS_BIAS:
        tl.store(db_part + part * C + c, tl.sum(db_acc, axis=0), mask=cmask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=_OFFS)
def _conv_bwd_dx(
    g, w, o0, o1, o2, o3, o4, o5, o6, o7, dx,
    L, C, K,
    swk, swc, swj, sgb, sgl, sgc,
    W: tl.constexpr, BL: tl.constexpr, BC: tl.constexpr,
):
    """dx[t] = sum_k sum_j w_k[j] g_k[t - off_k - j]."""
    pid_l, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    t = pid_l * BL + tl.arange(0, BL)
    c = pid_c * BC + tl.arange(0, BC)
    cmask = c < C
    acc = tl.zeros((BL, BC), dtype=tl.float32)
    for k in range(K):
        shift = _pick(k, o0, o1, o2, o3, o4, o5, o6, o7)
        g_k = g + (b.to(tl.int64) * K + k) * L * C
        for j in tl.static_range(W):
            p = t - shift - j
            m = ((p >= 0) & (p < L))[:, None] & cmask[None, :]
            gv = tl.load(g_k + p[:, None] * C + c[None, :], mask=m, other=0.0)
            wv = tl.load(w + k * swk + c * swc + j * swj, mask=cmask, other=0.0).to(tl.float32)
            acc += gv * wv[None, :]
    m = (t < L)[:, None] & cmask[None, :]
    tl.store(dx + b.to(tl.int64) * sgb + t[:, None] * sgl + c[None, :] * sgc, acc.to(dx.dtype.element_ty), mask=m)


@dataclasses.dataclass(frozen=True)
class ConvTiles:
    """Tile sizes (tokens x channels per block; the backward's tokens per program); tests pass small ones."""

    fwd_BL: int = 32
    fwd_BC: int = 128
    fwd_warps: int = 4
    fwd_cm_BL: int = 128  # channel-major output: tokens are the stores' contiguous axis
    fwd_cm_BC: int = 64
    # H200, bf16, Vim's shapes (tools/bench_conv.py): BL 16 x BC 128 against 32 x 64 took the backward from
    # 0.372 to 0.301 ms at Vim-S (batch 128), 0.340 to 0.302 at Vim-Ti 1248 (batch 8); channel-major forward
    # 128 x 64 against 128 x 32: 0.104 -> 0.094 and 0.091 -> 0.077 ms. Stop 30 (docs/bench/h200-2026-12-01-s30):
    # 64 x 64 was faster alone (71.4 against 76.5 us at Vim-Ti 1248) but slower inside the model's step (1.92
    # against 1.81 ms for 24 calls); one program running both tap sets of its tile (x read once) was slower at
    # every tile tried (80-184 us)
    bwd_BL: int = 16
    bwd_BC: int = 128
    bwd_warps: int = 4
    # bwd_chunk 256 against 128 / 64 / 32 (H200, bf16, stop 26): 301.5 / 322.8 / 356.4 / 409.8 us at Vim-S, the
    # others within 3% or slower at every shape tried (kernels/selective_scan/NOTES.md, "Stop 26")
    bwd_chunk: int = 256


DEFAULT_TILES = ConvTiles()


def _offset_args(offsets: tuple[int, ...]) -> tuple[int, ...]:
    """The K offsets as MAX_TAP_SETS scalar kernel arguments (unused ones 0). Scalars rather than a device
    tensor: a tensor made per call is a host-to-device copy (it waits for the stream and cannot be captured
    in a CUDA graph), and one cached across calls outlives a CUDA graph's memory pool (torch.compile's
    "reduce-overhead" refuses it)."""
    if len(offsets) > MAX_TAP_SETS:
        raise ValueError(f"triton conv1d: at most {MAX_TAP_SETS} tap sets, got {len(offsets)}")
    return tuple(offsets) + (0,) * (MAX_TAP_SETS - len(offsets))


@triton.jit
def _pick(k, o0, o1, o2, o3, o4, o5, o6, o7):
    """offsets[k] from the scalar arguments."""
    return tl.where(k == 0, o0, tl.where(k == 1, o1, tl.where(k == 2, o2, tl.where(k == 3, o3, tl.where(
        k == 4, o4, tl.where(k == 5, o5, tl.where(k == 6, o6, o7)))))))


def triton_conv_forward(x, weight, bias, offsets, silu: bool, channel_major: bool = False,
                        tiles: ConvTiles = DEFAULT_TILES) -> torch.Tensor:
    """x (batch, L, C), weight (K, C, W), bias (K, C) or None -> out (batch, K, L, C) in x's dtype, stored
    (K, batch, L, C) or, with ``channel_major``, (K, C, batch, L) (then tokens are the wide tile axis)."""
    batch, L, C = x.shape
    K, _, W = weight.shape
    out = new_conv_out(x, K, channel_major)
    BL, BC = (tiles.fwd_cm_BL, tiles.fwd_cm_BC) if channel_major else (tiles.fwd_BL, tiles.fwd_BC)
    if out.numel() == 0:
        return out
    b = bias if bias is not None else weight
    grid = (cdiv(L, BL), cdiv(C, BC), batch * K)
    _conv_fwd[grid](
        x, weight, b, *_offset_args(offsets), out, L, C, K,
        *x.stride(), *weight.stride(), b.stride(0), b.stride(-1), *out.stride(),
        W=W, HAS_BIAS=bias is not None, SILU=silu, BL=BL, BC=BC, num_warps=tiles.fwd_warps,
    )
    return out


def triton_conv_backward(dout, x, weight, bias, offsets, silu: bool, tiles: ConvTiles = DEFAULT_TILES):
    """Gradients (dx (batch, L, C) in x's dtype, dweight (K, C, W), dbias (K, C) or None) in float32 sums."""
    batch, L, C = x.shape
    K, _, W = weight.shape
    dx = x.new_empty((batch, L, C))
    n_chunks = cdiv(L, tiles.bwd_chunk)
    dw_part = x.new_zeros((batch, n_chunks, K, W, C), dtype=torch.float32)
    db_part = x.new_zeros((batch, n_chunks, K, C), dtype=torch.float32) if bias is not None else None
    if x.numel():
        b = bias if bias is not None else weight
        offs = _offset_args(offsets)
        g = x.new_empty((batch, K, L, C), dtype=torch.float32)
        _conv_bwd_g[(n_chunks, cdiv(C, tiles.bwd_BC), batch * K)](
            x, weight, b, *offs, dout, g, dw_part, db_part if db_part is not None else dw_part,
            L, C, K, n_chunks,
            *x.stride(), *weight.stride(), b.stride(0), b.stride(-1), *dout.stride(),
            W=W, WP=next_pow2(W), HAS_BIAS=bias is not None, SILU=silu, BL=tiles.bwd_BL,
            BC=tiles.bwd_BC, CHUNK=tiles.bwd_chunk, num_warps=tiles.bwd_warps,
        )
        _conv_bwd_dx[(cdiv(L, tiles.fwd_BL), cdiv(C, tiles.fwd_BC), batch)](
            g, weight, *offs, dx, L, C, K, *weight.stride(), *dx.stride(),
            W=W, BL=tiles.fwd_BL, BC=tiles.fwd_BC, num_warps=tiles.fwd_warps,
        )
    else:
        dx.zero_()
    dw = dw_part.sum(dim=(0, 1)).permute(0, 2, 1)
    db = db_part.sum(dim=(0, 1)) if db_part is not None else None
    return dx, dw, db
