"""Triton backward for N = 1 (one state per channel, VMamba v2): a chunk-walking kernel.

One program per (row = (batch row, direction), channel block) walks the chunks from last to first
with the adjoint in registers, so no adjoint carry pass runs, and sums dA/dD/d(delta_bias) over time
in registers (one partial per row, reduced by `torch.sum`: no atomics). Tiles are channel-major
(BLOCK_D, NP, T) with T across the lanes of a warp: with a single state there is no sum over states,
loads and stores are coalesced along time, and the register footprint stays small. The states at
chunk starts come from the forward-state carry pass (`triton_carry`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..intmath import cdiv
from ..launch import fast_launch
from .triton_carry import run_carry
from .triton_common import (
    DEFAULT_TILES,
    LOG2E,
    Grads,
    Prep,
    Tiles,
    _channel_block,
    _combine,
    _direction64,
    _step_size,
    _token_index,
    check_device,
    pow2_divisor,
    strides,
    to_f32,
)

__all__ = ["triton_backward_walk", "walk_block_d"]


@triton.jit
def _walk_loads(
    k, L, b64, kd, r64, g, offs_d, offs_n, mask_n, offs_t, order_row, dim, N, n_chunks,
    u_ptr, delta_ptr, z_ptr, dout_ptr, B_ptr, C_ptr, hst_ptr,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, GATHER: tl.constexpr, IDX64: tl.constexpr,
):
    """What chunk k of one channel block reads."""
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[None, :]
    idx = _token_index(pos, L, order_row, GATHER, IDX64)
    mask_nx = (pos + 1 < L) & (offs_t < T - 1)
    idx_nx = _token_index(pos + 1, L, order_row, GATHER, IDX64)
    mnt = mask_n[:, None] & m2
    offs_d64 = offs_d[:, None].to(tl.int64)
    Bt = tl.load(B_ptr + b64 * sB_b + kd * sB_k + g.to(tl.int64) * sB_g + offs_n[:, None] * sB_n + idx[None, :] * sB_l,
                 mask=mnt, other=0.0).to(tl.float32)
    Ct = tl.load(C_ptr + b64 * sC_b + kd * sC_k + g.to(tl.int64) * sC_g + offs_n[:, None] * sC_n + idx[None, :] * sC_l,
                 mask=mnt, other=0.0).to(tl.float32)
    h0 = tl.load(hst_ptr + ((r64 * dim + offs_d64) * n_chunks + k) * N + offs_n[None, :], mask=mask_n[None, :],
                 other=0.0)
    u = tl.load(u_ptr + b64 * su_b + kd * su_k + offs_d64 * su_d + idx[None, :] * su_l, mask=m2, other=0.0)
    dt_ptrs = delta_ptr + b64 * sdt_b + kd * sdt_k + offs_d64 * sdt_d
    delta = tl.load(dt_ptrs + idx[None, :] * sdt_l, mask=m2, other=0.0).to(tl.float32)
    delta_nx = tl.load(dt_ptrs + idx_nx[None, :] * sdt_l, mask=mask_nx[None, :], other=0.0).to(tl.float32)
    dout = tl.load(dout_ptr + b64 * sdo_b + offs_d64 * sdo_d + idx[None, :] * sdo_l, mask=m2, other=0.0)
    if HAS_Z:
        zz = tl.load(z_ptr + b64 * sz_b + kd * sz_k + offs_d64 * sz_d + idx[None, :] * sz_l, mask=m2, other=0.0)
        zz = zz.to(tl.float32)
    else:
        zz = dout.to(tl.float32)  # placeholder of the same type; unused
    return idx, mask_nx, Bt, Ct, h0, u.to(tl.float32), delta, delta_nx, dout.to(tl.float32), zz


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "L", "N", "dim_per_group", "n_dblk", "n_slices", "n_chunks"])
def _bwd_walk_kernel(
    u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, hst_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, scale,
    K, dim, L, N, dim_per_group, n_dblk, n_slices, n_chunks,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l, sg_b, sg_k, sg_d, sg_l, sdz_b, sdz_k, sdz_d, sdz_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr,
    GATHER: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    r, d0, g, offs_d, offs_n, mask_n = _channel_block(tl.program_id(0), n_dblk, dim_per_group, N, BLOCK_D, NP)
    r64 = r.to(tl.int64)
    b64 = (r // K).to(tl.int64)
    kd = _direction64(r % K, IDX64)
    sl = (d0 % dim_per_group) // BLOCK_D
    offs_d64 = offs_d[:, None].to(tl.int64)
    offs_t = tl.arange(0, T)
    is_last = (offs_t == T - 1)[None, None, :]
    is_first = (offs_t == 0)[None, None, :]
    order_row = order_ptr + kd * L

    A = tl.load(A_ptr + (kd * dim + offs_d[:, None]) * N + offs_n[None, :], mask=mask_n[None, :], other=0.0)
    A2 = A * LOG2E
    Dv = tl.load(D_ptr + kd * dim + offs_d)
    bias = tl.load(bias_ptr + kd * dim + offs_d)
    st = (r64 * dim + offs_d64) * N + offs_n[None, :]
    if HAS_DLAST:
        R = tl.load(dlast_ptr + st, mask=mask_n[None, :], other=0.0)
    else:  # no gradient reached the last states
        R = tl.zeros((BLOCK_D, NP), dtype=tl.float32)
    dA_acc = tl.zeros((BLOCK_D, NP), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    db_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    g_base = b64 * sg_b + kd * sg_k + offs_d64 * sg_d
    bc_base = ((r64 * n_slices + sl) * (dim // dim_per_group) + g) * (N * L) + offs_n[:, None] * L

    nxt = _walk_loads(n_chunks - 1, L, b64, kd, r64, g, offs_d, offs_n, mask_n, offs_t, order_row, dim, N, n_chunks,
                      u_ptr, delta_ptr, z_ptr, dout_ptr, B_ptr, C_ptr, hst_ptr,
                      su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                      sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l, HAS_Z, GATHER, IDX64)
    for i in range(0, n_chunks):
        k = n_chunks - 1 - i
        # the next chunk visited is loaded before this one is computed
        idx, mask_nx, Bt, Ct, h0, u, delta, delta_nx, dout, zz = nxt
        nxt = _walk_loads(tl.maximum(k - 1, 0), L, b64, kd, r64, g, offs_d, offs_n, mask_n, offs_t, order_row,
                          dim, N, n_chunks, u_ptr, delta_ptr, z_ptr, dout_ptr, B_ptr, C_ptr, hst_ptr,
                          su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l,
                          sdo_b, sdo_d, sdo_l, sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
                          HAS_Z, GATHER, IDX64)
        dout = dout * scale
        pos = k * T + offs_t
        m2 = (pos < L)[None, :]
        mnt = mask_n[:, None] & m2
        g_off = g_base + idx[None, :] * sg_l
        dt = _step_size(delta, bias[:, None], m2, SOFTPLUS)
        dt_nx = _step_size(delta_nx, bias[:, None], mask_nx[None, :], SOFTPLUS)

        # states inside the chunk, from the stored chunk-start state
        a = tl.exp2(A2[:, :, None] * dt[:, None, :])
        dtu = dt * u
        x = dtu[:, None, :] * Bt[None, :, :]
        a_cum, x_cum = tl.associative_scan((a, x), 2, _combine)
        hs = a_cum * h0[:, :, None] + x_cum

        if HAS_Z:
            sz = tl.sigmoid(zz)
            y = tl.sum(hs * Ct[None, :, :], axis=1) + Dv[:, None] * u
            dz = dout * y * sz * (1.0 + zz * (1.0 - sz))
            dz_off = b64 * sdz_b + kd * sdz_k + offs_d64 * sdz_d + idx[None, :] * sdz_l
            tl.store(dz_ptr + dz_off, dz.to(dz_ptr.dtype.element_ty), mask=m2)
            dy = dout * zz * sz
        else:
            dy = dout

        # adjoint: g_t = C_t dy_t + a_{t+1} g_{t+1}, scanned backwards; R enters at the chunk's end
        alpha = tl.where(is_last, 1.0, tl.exp2(A2[:, :, None] * dt_nx[:, None, :]))
        c = Ct[None, :, :] * dy[:, None, :]
        p_cum, g_cum = tl.associative_scan((alpha, c), 2, _combine, reverse=True)
        gs = g_cum + p_cum * R[:, :, None]

        gB = tl.sum(gs * Bt[None, :, :], axis=1)
        ga = gs * (hs - x)  # g_t * a_t * h_{t-1}
        du = dt * gB + Dv[:, None] * dy
        ddt = u * gB + tl.sum(ga * A[:, :, None], axis=1)
        if SOFTPLUS:
            ddelta = ddt * tl.sigmoid(delta + bias[:, None])
        else:
            ddelta = ddt
        ddelta = tl.where(m2, ddelta, 0.0)
        tl.store(du_ptr + g_off, du.to(du_ptr.dtype.element_ty), mask=m2)
        tl.store(ddelta_ptr + g_off, ddelta.to(ddelta_ptr.dtype.element_ty), mask=m2)

        R = tl.sum(tl.where(is_first, a * gs, 0.0), axis=2)  # a_{t0} g_{t0}: enters the chunk before
        dA_acc += tl.sum(ga * dt[:, None, :], axis=2)
        dD_acc += tl.sum(dy * u, axis=1)
        db_acc += tl.sum(ddelta, axis=1)
        tl.store(dB_ptr + bc_base + idx[None, :], tl.sum(gs * dtu[:, None, :], axis=0), mask=mnt)
        tl.store(dC_ptr + bc_base + idx[None, :], tl.sum(hs * dy[:, None, :], axis=0), mask=mnt)

    tl.store(dA_ptr + st, dA_acc, mask=mask_n[None, :])
    tl.store(dD_ptr + r64 * dim + offs_d, dD_acc)
    tl.store(dbias_ptr + r64 * dim + offs_d, db_acc)


def walk_block_d(dim_per_group: int, NP: int, tiles: Tiles = DEFAULT_TILES) -> int:
    """Channels per program of the walking kernel."""
    return pow2_divisor(dim_per_group, max(1, tiles.walk_tile // (NP * tiles.walk_T)))


def triton_backward_walk(
    dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale=1.0, *,
    states: torch.Tensor | None = None, tiles: Tiles = DEFAULT_TILES,
) -> list[torch.Tensor | None]:
    """N = 1 backward in the op's normal form; gradients for (u, delta, A, B, C, D, z, delta_bias).

    ``states``: the states before every walk_T-th token kept by the forward (`triton_forward`'s
    ``states_T``); without them a carry pass recomputes them. dlast: the last states' gradient (batch, K, D, N), or
    None where none reached them (zero, not read)."""
    check_device(u)
    p = Prep(u, delta, A, B, C, D, z, delta_bias, index, scale)
    T = tiles.walk_T
    n_chunks = cdiv(p.L, T)
    softplus = bool(delta_softplus)
    if dlast is not None:
        dlast = to_f32(dlast).contiguous()
    hst = states if states is not None else run_carry(p, u, delta, n_chunks, T, 1, softplus, tiles)
    bd = walk_block_d(p.dim_per_group, p.NP, tiles)
    n_dblk = p.dim // bd
    n_slices = p.dim_per_group // bd
    grads = Grads(p, u, delta, z, 1, n_slices)  # dA/dD/d(delta_bias): one partial per row
    _bwd_walk_kernel[(p.rows * n_dblk,)](
        u, delta, z if z is not None else u, dout, p.A, p.B, p.C, p.D, p.bias, p.index, hst,
        dlast if dlast is not None else hst,
        *grads.pointers(), p.scale,
        p.K, p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_slices, n_chunks,
        *u.stride(), *delta.stride(), *strides(z, 4), *dout.stride(), *p.B.stride(), *p.C.stride(),
        *grads.strides(), *grads.dz_strides(),
        HAS_Z=z is not None, SOFTPLUS=softplus, HAS_DLAST=dlast is not None, GATHER=p.gather, IDX64=p.idx64,
        BLOCK_D=bd, NP=p.NP, T=T, num_warps=tiles.walk_warps,
    )
    return grads.finish(D, delta_bias)
