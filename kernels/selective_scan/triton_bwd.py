"""Triton backward of the selective scan: every chunk of every direction in parallel.

One program per (row = (batch row, direction), group, channel slice, chunk). It reads the chunk's
start state and adjoint carry from the two carry passes (`triton_carry`), recomputes the states in
the chunk, runs the adjoint scan backwards (flip + prefix scan, `_reverse_scan`) and forms every
gradient, loading channel block j + 1 while block j is computed. dB/dC are summed over the slice's
channels in registers; dA/dD/d(delta_bias) are written per (row, chunk) and reduced by `torch.sum`:
no atomics, so results are bit-identical run to run. Tiles are time-major as in `triton_fwd`.

The adjoint of direction k is driven by ``scale * dout`` at the tokens it visits (out sums the
directions), so its gradients of per-token inputs land at the tokens it read: per direction, in
natural token order.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..intmath import cdiv
from ..launch import fast_launch
from .triton_carry import run_carry_pair
from .triton_common import (
    DEFAULT_TILES,
    LOG2E,
    Grads,
    Prep,
    Tiles,
    _combine,
    _direction64,
    _load_tile,
    _reverse_scan,
    _step_size,
    _store_tile,
    _token_index,
    check_device,
    strides,
    to_f32,
)

__all__ = ["triton_backward_chunks"]


@triton.jit
def _bwd_loads(
    d0, k, r64, kd, b64, offs_n, mask_n, idx, idx_nx, m2, mask_nx, dim, N, n_chunks,
    u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    HAS_Z: tl.constexpr, MASK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Everything one channel block of one chunk reads besides B and C."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_d64 = offs_d[None, :].to(tl.int64)
    A = tl.load(A_ptr + (kd * dim + offs_d[:, None]) * N + offs_n[None, :], mask=mask_n[None, :], other=0.0)
    Dv = tl.load(D_ptr + kd * dim + offs_d)
    bias = tl.load(bias_ptr + kd * dim + offs_d)
    st_off = ((r64 * dim + offs_d[:, None]) * n_chunks + k) * N + offs_n[None, :]
    h0 = tl.load(hst_ptr + st_off, mask=mask_n[None, :], other=0.0)
    R = tl.load(adj_ptr + st_off, mask=mask_n[None, :], other=0.0)
    u = _load_tile(u_ptr + b64 * su_b + kd * su_k + offs_d64 * su_d + idx[:, None] * su_l, m2, MASK_T)
    dt_ptrs = delta_ptr + b64 * sdt_b + kd * sdt_k + offs_d64 * sdt_d
    delta = _load_tile(dt_ptrs + idx[:, None] * sdt_l, m2, MASK_T)
    delta_nx = tl.load(dt_ptrs + idx_nx[:, None] * sdt_l, mask=mask_nx[:, None], other=0.0).to(tl.float32)
    dout = _load_tile(dout_ptr + b64 * sdo_b + offs_d64 * sdo_d + idx[:, None] * sdo_l, m2, MASK_T)
    if HAS_Z:
        zz = _load_tile(z_ptr + b64 * sz_b + kd * sz_k + offs_d64 * sz_d + idx[:, None] * sz_l, m2, MASK_T)
    else:
        zz = dout  # placeholder of the same type; unused
    return A, Dv, bias, h0, R, u, delta, delta_nx, dout, zz


@triton.jit
def _bwd_compute(
    cur, d0, k, r64, b64, kd, idx, m2, mask_nx, mask_n, is_last, Bt, Ct, dB_acc, dC_acc, scale,
    dim, N, n_chunks, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, sg_b, sg_k, sg_d, sg_l, sdz_b, sdz_k, sdz_d, sdz_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Gradients of one channel block of one chunk; returns the dB/dC accumulators."""
    A, Dv, bias, h0, R, u, delta, delta_nx, dout, zz = cur
    dout = dout * scale
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_d64 = offs_d[None, :].to(tl.int64)
    offs_n = tl.arange(0, A.shape[1])
    A2 = A * LOG2E
    dt = _step_size(delta, bias[None, :], m2, SOFTPLUS, MASK_T)
    dt_nx = _step_size(delta_nx, bias[None, :], mask_nx[:, None], SOFTPLUS)

    # states inside the chunk, from the stored chunk-start state
    a = tl.exp2(A2[None, :, :] * dt[:, :, None])
    dtu = dt * u
    x = dtu[:, :, None] * Bt[:, None, :]
    a_cum, x_cum = tl.associative_scan((a, x), 0, _combine)
    hs = a_cum * h0[None, :, :] + x_cum

    g_off = b64 * sg_b + kd * sg_k + offs_d64 * sg_d + idx[:, None] * sg_l
    if HAS_Z:
        sz = tl.sigmoid(zz)
        y = tl.sum(hs * Ct[:, None, :], axis=2) + Dv[None, :] * u
        dz = dout * y * sz * (1.0 + zz * (1.0 - sz))
        _store_tile(dz_ptr + b64 * sdz_b + kd * sdz_k + offs_d64 * sdz_d + idx[:, None] * sdz_l, dz, m2, MASK_T)
        dy = dout * zz * sz
    else:
        dy = dout

    # adjoint: g_t = C_t dy_t + a_{t+1} g_{t+1}, scanned backwards; R enters at the chunk's end
    alpha = tl.where(is_last, 1.0, tl.exp2(A2[None, :, :] * dt_nx[:, :, None]))
    c = Ct[:, None, :] * dy[:, :, None]
    p_cum, g_cum = _reverse_scan(alpha, c)
    gs = g_cum + p_cum * R[None, :, :]

    ga = gs * (hs - x)  # g_t * a_t * h_{t-1}
    gB = tl.sum(gs * Bt[:, None, :], axis=2)
    du = dt * gB + Dv[None, :] * dy
    ddt = u * gB + tl.sum(ga * A[None, :, :], axis=2)
    if SOFTPLUS:
        ddelta = ddt * tl.sigmoid(delta + bias[None, :])
    else:
        ddelta = ddt
    if MASK_T:
        ddelta = tl.where(m2, ddelta, 0.0)
    _store_tile(du_ptr + g_off, du, m2, MASK_T)
    _store_tile(ddelta_ptr + g_off, ddelta, m2, MASK_T)

    p_off = (r64 * n_chunks + k) * dim + offs_d
    tl.store(dA_ptr + p_off[:, None] * N + offs_n[None, :], tl.sum(ga * dt[:, :, None], axis=0), mask=mask_n[None, :])
    tl.store(dD_ptr + p_off, tl.sum(dy * u, axis=0))
    tl.store(dbias_ptr + p_off, tl.sum(ddelta, axis=0))
    return dB_acc + gs * dtu[:, :, None], dC_acc + hs * dy[:, :, None]


@triton.jit
def _bwd_chunk(
    k, r64, b64, kd, g, sl, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr,
    hst_ptr, adj_ptr, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, scale,
    dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l, sg_b, sg_k, sg_d, sg_l, sdz_b, sdz_k, sdz_d, sdz_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr,
    GATHER: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """All gradients of chunk k for the channel slice `sl` of group g of row r."""
    offs_n = tl.arange(0, NP)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    pos = k * T + offs_t
    mask_t = pos < L
    order_row = order_ptr + kd * L
    idx = _token_index(pos, L, order_row, GATHER, IDX64)
    # the next visited token, for a_{t+1} in the adjoint recurrence g_t = c_t + a_{t+1} g_{t+1}
    mask_nx = (pos + 1 < L) & (offs_t < T - 1)
    idx_nx = _token_index(pos + 1, L, order_row, GATHER, IDX64)
    m2 = mask_t[:, None]
    mtn = m2 & mask_n[None, :]
    is_last = (offs_t == T - 1)[:, None, None]

    Bt = tl.load(B_ptr + b64 * sB_b + kd * sB_k + g.to(tl.int64) * sB_g + offs_n[None, :] * sB_n + idx[:, None] * sB_l,
                 mask=mtn, other=0.0).to(tl.float32)
    Ct = tl.load(C_ptr + b64 * sC_b + kd * sC_k + g.to(tl.int64) * sC_g + offs_n[None, :] * sC_n + idx[:, None] * sC_l,
                 mask=mtn, other=0.0).to(tl.float32)
    # dB/dC are accumulated elementwise over channel blocks and reduced over channels once at the end
    dB_acc = tl.zeros((T, BLOCK_D, NP), dtype=tl.float32)
    dC_acc = tl.zeros((T, BLOCK_D, NP), dtype=tl.float32)

    d_first = g * dim_per_group + sl * slice_len
    d_last = d_first + slice_len - BLOCK_D
    # the next channel block's loads are issued before this block is computed
    nxt = _bwd_loads(d_first, k, r64, kd, b64, offs_n, mask_n, idx, idx_nx, m2, mask_nx, dim, N, n_chunks,
                     u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
                     su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                     HAS_Z, MASK_T, BLOCK_D)
    for d0 in range(d_first, d_first + slice_len, BLOCK_D):
        cur = nxt
        nxt = _bwd_loads(tl.minimum(d0 + BLOCK_D, d_last), k, r64, kd, b64, offs_n, mask_n, idx, idx_nx,
                         m2, mask_nx, dim, N, n_chunks, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, D_ptr, bias_ptr,
                         hst_ptr, adj_ptr, su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l,
                         sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l, HAS_Z, MASK_T, BLOCK_D)
        dB_acc, dC_acc = _bwd_compute(cur, d0, k, r64, b64, kd, idx, m2, mask_nx, mask_n, is_last, Bt, Ct,
                                      dB_acc, dC_acc, scale, dim, N, n_chunks,
                                      du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, sg_b, sg_k, sg_d, sg_l, sdz_b, sdz_k, sdz_d, sdz_l,
                                      HAS_Z, SOFTPLUS, MASK_T, BLOCK_D)

    bc_off = ((r64 * n_slices + sl) * n_groups + g) * (N * L) + offs_n[None, :] * L + idx[:, None]
    tl.store(dB_ptr + bc_off, tl.sum(dB_acc, axis=1), mask=mtn)
    tl.store(dC_ptr + bc_off, tl.sum(dC_acc, axis=1), mask=mtn)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(
    do_not_specialize=["K", "dim", "L", "N", "dim_per_group", "n_groups", "n_slices", "slice_len", "n_chunks",
                       "k_offset"]
)
def _bwd_kernel(
    u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, hst_ptr, adj_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, scale,
    K, dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks, k_offset,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l, sg_b, sg_k, sg_d, sg_l, sdz_b, sdz_k, sdz_d, sdz_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr,
    GATHER: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """Chunk-parallel backward: one program per (row, group, channel slice, chunk).

    Full chunks run without time masks; the partial last chunk (if any) takes the masked copy of the
    code inside the same launch and is scheduled first (as a launch of its own it ran rows x slices
    programs alone: 9% of the Vim-S backward on the H100).
    """
    pid = tl.program_id(0)
    k = n_chunks - 1 - (tl.program_id(1) + k_offset)  # last chunk first: the partial one starts early
    sl = pid % n_slices
    g = (pid // n_slices) % n_groups
    r = pid // (n_slices * n_groups)
    r64 = r.to(tl.int64)
    b64 = (r // K).to(tl.int64)
    kd = _direction64(r % K, IDX64)
    if k < L // T:
        _bwd_chunk(k, r64, b64, kd, g, sl, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr,
                   order_ptr, hst_ptr, adj_ptr, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
                   scale, dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks,
                   su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                   sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l, sg_b, sg_k, sg_d, sg_l, sdz_b, sdz_k, sdz_d, sdz_l,
                   HAS_Z, SOFTPLUS, False, GATHER, IDX64, BLOCK_D, NP, T)
    else:
        _bwd_chunk(k, r64, b64, kd, g, sl, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr,
                   order_ptr, hst_ptr, adj_ptr, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
                   scale, dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks,
                   su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                   sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l, sg_b, sg_k, sg_d, sg_l, sdz_b, sdz_k, sdz_d, sdz_l,
                   HAS_Z, SOFTPLUS, True, GATHER, IDX64, BLOCK_D, NP, T)


def triton_backward_chunks(
    dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale=1.0, *,
    tiles: Tiles = DEFAULT_TILES,
) -> list[torch.Tensor | None]:
    """Chunk-parallel backward in the op's normal form; gradients for (u, delta, A, B, C, D, z, delta_bias).
    dlast: the last states' gradient (batch, K, D, N), or None where none reached them (zero, not read)."""
    check_device(u)
    p = Prep(u, delta, A, B, C, D, z, delta_bias, index, scale)
    short = p.G == 1 and p.NP >= tiles.bwd_short_min_np and p.L <= tiles.bwd_short_max_L
    T = tiles.bwd_T_n1 if p.NP == 1 else tiles.bwd_T_short if short else tiles.bwd_T
    n_chunks = cdiv(p.L, T)
    softplus = bool(delta_softplus)
    if dlast is not None:
        dlast = to_f32(dlast).contiguous()
    if p.G > 1:
        bd, warps = p.block_d(tiles.bwd_dn_grouped, tiles.bwd_warps_grouped)
    else:
        bd, warps = p.block_d(tiles.bwd_dn_short if short else tiles.bwd_dn, tiles.bwd_warps)
    n_slices = p.slices(bd, n_chunks, tiles.bwd_target_programs)
    hst, adj = run_carry_pair(p, u, dout, delta, z, dlast, n_chunks, T, softplus, tiles)

    grads = Grads(p, u, delta, z, n_chunks, n_slices)
    args = (u, delta, z if z is not None else u, dout, p.A, p.B, p.C, p.D, p.bias, p.index, hst, adj,
            *grads.pointers(), p.scale,
            p.K, p.dim, p.L, p.N, p.dim_per_group, p.G, n_slices, p.dim_per_group // n_slices, n_chunks)
    strides_ = (*u.stride(), *delta.stride(), *strides(z, 4), *dout.stride(), *p.B.stride(), *p.C.stride(),
                *grads.strides(), *grads.dz_strides())
    flags = dict(HAS_Z=z is not None, SOFTPLUS=softplus, GATHER=p.gather, IDX64=p.idx64,
                 BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps)
    for k_offset in range(0, n_chunks, 65535):  # the grid's second dimension holds 65535 at most
        _bwd_kernel[(p.rows * p.G * n_slices, min(65535, n_chunks - k_offset))](*args, k_offset, *strides_, **flags)
    return grads.finish(D, delta_bias)
