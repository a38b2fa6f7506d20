"""One launch that stacks the Mamba mixer's per-direction parameters into the layout of the fused path.

Vim's mixer feeds its two directions to one conv op and one projected scan, which take every parameter
stacked along a leading direction axis. In training the stacking is rebuilt every step (the parameters
change) and, as torch ops, it is several launches and a few dozen view ops of host time in a forward that
the host bounds (Vim-S, batch 128, H200: 472 kernels and ~29 ms of GPU idle time in a 52 ms forward under
the profiler). `pack_directions` does it in one kernel over the K <= 2 directions:

    taps       (K, E, W)       conv weight (E, 1, W) of direction k, direction 1's mirrored along W
    conv_bias  (K, E)          or None
    D, delta_bias (K, E)
    A          (K, E, N)       -exp(A_log) (Triton's exp: on CUDA within ~3e-7 of torch's, relative)
    w_x        (K, R + 2N, E)  x_proj weights, cast to ``proj_dtype``
    w_dt       (K, E, R)       dt_proj weights, cast to ``proj_dtype``

The first five are views of one buffer in the parameters' dtype (float32 or float64), the weights views of one
buffer in ``proj_dtype``. Each program covers a block of the two buffers seen as one sequence: every element
finds its source by comparing its position with the region bounds and reads it with one masked load per
source (at most 14 sources, ~10^5 elements per layer: the kernel's time is its launch).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..intmath import cdiv
from ..launch import fast_launch, on_device_of

__all__ = ["pack_directions", "PER_DIRECTION"]

PER_DIRECTION = 7  # conv weight, conv bias, x_proj weight, dt_proj weight, dt_proj bias, A_log, D
_BLOCK = 1024


@triton.jit
def _pick(o, lo, n_per, K, src0, src1, j1, mask, prev):
    """The element at o of a region starting at lo with n_per elements per direction (K of them): direction 0
    reads src0 at o - lo, direction 1 reads src1 at j1 (its own index, given mirrored where the region mirrors);
    `prev` outside the region (selected, not added: a -0.0 stays -0.0)."""
    i = o - lo
    m0 = mask & (i >= 0) & (i < n_per)
    m1 = mask & (K > 1) & (i >= n_per) & (i < 2 * n_per)
    v0 = tl.load(src0 + tl.where(m0, i, 0), mask=m0, other=0.0)
    v1 = tl.load(src1 + tl.where(m1, j1, 0), mask=m1, other=0.0)
    return tl.where(m0, v0, tl.where(m1, v1, prev))


@triton.jit
def _bf16_bits(x):
    """The bits (int16) of float32 x rounded to the nearest bfloat16, ties to even, as torch rounds; a NaN stays a
    NaN (quieted). Done on the bits and stored as int16: the interpreter's own casts truncate (and flush
    subnormals)."""
    bits = x.to(tl.int32, bitcast=True)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return tl.where(x != x, (bits >> 16) | 0x40, rounded).to(tl.int16)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _pack_kernel(
    cw0_ptr, cb0_ptr, wx0_ptr, wdt0_ptr, db0_ptr, al0_ptr, d0_ptr,
    cw1_ptr, cb1_ptr, wx1_ptr, wdt1_ptr, db1_ptr, al1_ptr, d1_ptr, flat_ptr, wout_ptr,
    E, W, N, NX, NDT, K, n_flat, total,
    HAS_BIAS: tl.constexpr, TO_BF16: tl.constexpr, BLOCK: tl.constexpr,
):
    """TO_BF16: wout_ptr is the bfloat16 buffer seen as int16 (`_bf16_bits`)."""
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = o < total
    # region bounds in the flat buffer: taps, conv bias, D, delta_bias, A; then the weights' buffer
    r_bias = K * E * W
    r_D = r_bias + (K * E if HAS_BIAS else 0)
    r_db = r_D + K * E
    r_A = r_db + K * E
    # taps: direction 1 mirrored along W
    i = o - E * W
    zero = tl.zeros((BLOCK,), dtype=flat_ptr.dtype.element_ty)
    v = _pick(o, 0, E * W, K, cw0_ptr, cw1_ptr, (i // W) * W + (W - 1 - i % W), inside, zero)
    if HAS_BIAS:
        v = _pick(o, r_bias, E, K, cb0_ptr, cb1_ptr, o - r_bias - E, inside, v)
    v = _pick(o, r_D, E, K, d0_ptr, d1_ptr, o - r_D - E, inside, v)
    v = _pick(o, r_db, E, K, db0_ptr, db1_ptr, o - r_db - E, inside, v)
    a = _pick(o, r_A, E * N, K, al0_ptr, al1_ptr, o - r_A - E * N, inside, zero)
    v = tl.where((o >= r_A) & (o < n_flat), -tl.exp(a), v)
    tl.store(flat_ptr + tl.where(o < n_flat, o, 0), v, mask=o < n_flat)
    # the weights, cast to the output buffer's dtype
    ow = o - n_flat
    w = _pick(ow, 0, NX, K, wx0_ptr, wx1_ptr, ow - NX, inside, zero)
    w = _pick(ow, K * NX, NDT, K, wdt0_ptr, wdt1_ptr, ow - K * NX - NDT, inside, w)
    mw = (ow >= 0) & inside
    if TO_BF16:
        tl.store(wout_ptr + tl.where(mw, ow, 0), _bf16_bits(w), mask=mw)
    else:
        tl.store(wout_ptr + tl.where(mw, ow, 0), w.to(wout_ptr.dtype.element_ty), mask=mw)


def _launch(srcs, first, flat, wout, E, W, N, NX, NDT, K, n_flat, total, has_bias):
    cw, cb, wx, wdt, db, al, d = srcs
    if not NX:  # no weights to cast: any pointer stands in
        wx = wdt = (first, first)
    to_bf16 = wout.dtype == torch.bfloat16
    _pack_kernel[(cdiv(total, _BLOCK),)](
        cw[0], cb[0], wx[0], wdt[0], db[0], al[0], d[0], cw[1], cb[1], wx[1], wdt[1], db[1], al[1], d[1], flat,
        wout.view(torch.int16) if to_bf16 else wout,
        E, W, N, NX, NDT, K, n_flat, total, HAS_BIAS=has_bias, TO_BF16=to_bf16, BLOCK=_BLOCK,
    )


def pack_directions(params, proj_dtype: torch.dtype | None) -> tuple | None:
    """The stacked parameters (see the module docstring) from `PER_DIRECTION` tensors per direction, in the order
    conv weight (E, 1, W), conv bias (E,) or None, x_proj weight (R + 2N, E), dt_proj weight (E, R), dt_proj bias
    (E,), A_log (E, N), D (E,); one launch on the current device. None (the caller stacks with torch ops) where
    it does not apply: more than two directions, parameters not all contiguous and of one float32 / float64
    dtype (float32 on CUDA), or shapes that do not agree."""
    K = len(params) // PER_DIRECTION
    if K not in (1, 2) or len(params) != K * PER_DIRECTION:
        return None
    first = params[0]
    dtype = first.dtype
    if dtype not in (torch.float32, torch.float64) or first.dim() != 3 or first.shape[1] != 1:
        return None
    if dtype == torch.float64 and (first.is_cuda or proj_dtype == torch.bfloat16):
        return None  # float64 modules keep torch's exp on CUDA; and the bfloat16 rounding is from float32 only
    groups = [params[i:i + PER_DIRECTION] for i in range(0, len(params), PER_DIRECTION)]
    has_bias = groups[0][1] is not None
    E, _, W = first.shape
    N = groups[0][5].shape[-1]
    w_shapes = (groups[0][2].shape, groups[0][3].shape)
    for g in groups:
        for p in g:
            if p is not None and (p.dtype != dtype or not p.is_contiguous() or p.device != first.device):
                return None
        if ((g[1] is not None) != has_bias or g[0].shape != first.shape or g[5].shape != (E, N)
                or g[6].shape != (E,) or g[4].shape != (E,) or g[2].shape != w_shapes[0] or g[3].shape != w_shapes[1]
                or (has_bias and g[1].shape != (E,))):
            return None
    NX, NDT = groups[0][2].numel(), groups[0][3].numel()
    shapes = [(K, E, W)] + ([(K, E)] if has_bias else []) + [(K, E), (K, E), (K, E, N)]  # taps, [bias], D, db, A
    n_flat = sum(math.prod(s) for s in shapes)
    n_w = K * (NX + NDT) if proj_dtype is not None else 0
    flat = first.new_empty((n_flat,))
    wout = first.new_empty((n_w,), dtype=proj_dtype) if n_w else flat  # (no weights: never written)
    last = groups[-1]
    srcs = [(groups[0][j] if groups[0][j] is not None else first, last[j] if last[j] is not None else first)
            for j in range(PER_DIRECTION)]
    with on_device_of(first):
        _launch(srcs, first, flat, wout, E, W, N, NX if n_w else 0, NDT if n_w else 0, K, n_flat, n_flat + n_w,
                has_bias)
    views = _views(flat, shapes)
    taps, conv_bias = views[0], (views[1] if has_bias else None)
    D, delta_bias, A = views[-3:]
    if not n_w:
        return taps, conv_bias, A, D, delta_bias, None, None
    w_x, w_dt = _views(wout, [(K, *groups[0][2].shape), (K, *groups[0][3].shape)])
    return taps, conv_bias, A, D, delta_bias, w_x, w_dt


def _views(buf: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Contiguous views of consecutive parts of the 1-D buffer, one per shape (one view op each)."""
    out, at = [], 0
    for shape in shapes:
        strides, step = [], 1
        for size in reversed(shape):
            strides.append(step)
            step *= size
        out.append(buf.as_strided(shape, tuple(reversed(strides)), at))
        at += math.prod(shape)
    return out
