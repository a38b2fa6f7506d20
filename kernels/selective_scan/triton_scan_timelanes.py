"""Selective-scan backward with time across lanes: the kernels for N = 1 (one state per channel).

Same math as `triton_scan.py` (see there), but register tiles are (channels, states, T) with T across
the lanes of a warp: the scans along time use warp shuffles, while loads and stores are coalesced as
the tensors lie in memory and the register footprint stays small. With a single state there is no
sum over states, so this layout wins there. `triton_scan.triton_backward` sends N = 1 here.

- `_bwd_walk_kernel` (the default once batch x channel blocks gives 264 programs): one program per
  (batch row, 4 channels) walks the chunks from last to first with the adjoint in registers, so no
  adjoint carry pass runs, and sums dA/dD/d(delta_bias) over time in registers. H100, VMamba-T
  stage 1 (128, 768, 3136, N=1, G=4), fp32: 6.4 ms against 10.8 ms for the chunk-parallel kernels.
- `_bwd_kernel` + `_carry_kernel`: the chunk-parallel structure of `triton_scan.py` in this layout,
  for batches too small for the walk to fill the GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_scan import _Grads, _pow2_divisor, _Prep, _strides

__all__ = ["triton_backward", "TILES"]

# Elements of the (channels, states, T) tile per program, and T (measured best for N = 1).
TILES: dict = {"bwd_tile": 2048, "bwd_T": 32, "bwd_warps": 4, "carry_tile": 4096, "carry_warps": 4,
               "target_programs": 1056,
               # the chunk-walking backward (`_bwd_walk_kernel`): used when batch x channel blocks gives
               # at least walk_min_programs programs; tile = channels x T per program
               "walk": True, "walk_tile": 128, "walk_warps": 4, "walk_prefetch": True, "walk_min_programs": 264,
               "v2_carry": True}


# ----------------------------------------------------------------------------------------------
# jitted helpers (channel-major tiles: 2-D (BLOCK_D, T), 3-D (BLOCK_D, NP, T))


@triton.jit
def _combine(a_l, x_l, a_r, x_r):
    # (a_l, x_l) is the earlier part of the sequence: h = a_r * (a_l * h0 + x_l) + x_r
    return a_l * a_r, x_l * a_r + x_r


@triton.jit
def _step_size(delta, bias, mask, SOFTPLUS: tl.constexpr):
    """dt = softplus(delta + bias) (or delta + bias); 0 where masked, so padding is a no-op step."""
    dt = delta + bias[:, None]
    if SOFTPLUS:
        dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(dt)))
    return tl.where(mask, dt, 0.0)


@triton.jit
def _token_index(pos, L, REVERSE: tl.constexpr, IDX64: tl.constexpr):
    if REVERSE:
        idx = L - 1 - pos
    else:
        idx = pos
    if IDX64:
        idx = idx.to(tl.int64)
    return idx


@triton.jit(do_not_specialize=["dim", "L", "N", "dim_per_group", "n_dblk", "n_chunks", "store_every", "n_slots"])
def _carry_kernel(
    x_ptr, delta_ptr, z_ptr, A_ptr, w_ptr, bias_ptr, init_ptr, out_ptr,
    dim, L, N, dim_per_group, n_dblk, n_chunks, store_every, n_slots,
    sx_b, sx_d, sx_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l,
    sw_b, sw_g, sw_n, sw_l,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_INIT: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """States (ADJOINT=False; x = u, w = B) or adjoint carries (ADJOINT=True; x = dout, w = C).

    States: out[b, d, k // store_every, n] = h before chunk k, for k % store_every == 0.
    Adjoint: out[b, d, k, n] = R_{k+1}, the adjoint entering chunk k from the right, where
    R_k = a_{t0} g_{t0} at the chunk's first step t0; R_{n_chunks} = init (d last_state).
    """
    pid = tl.program_id(0)
    b = pid // n_dblk
    d0 = (pid % n_dblk) * BLOCK_D
    g = d0 // dim_per_group
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, NP)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    b64 = b.to(tl.int64)

    A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0.0) * 1.4426950408889634
    bias = tl.load(bias_ptr + offs_d)
    x_base = x_ptr + b64 * sx_b + offs_d[:, None].to(tl.int64) * sx_d
    dt_base = delta_ptr + b64 * sdt_b + offs_d[:, None].to(tl.int64) * sdt_d
    z_base = z_ptr + b64 * sz_b + offs_d[:, None].to(tl.int64) * sz_d
    w_base = w_ptr + b64 * sw_b + g.to(tl.int64) * sw_g + offs_n[:, None] * sw_n
    st_off = (b64 * dim + offs_d[:, None]) * (n_slots * N) + offs_n[None, :]
    st_mask = mask_n[None, :]

    if HAS_INIT:
        h = tl.load(init_ptr + (b64 * dim + offs_d[:, None]) * N + offs_n[None, :], mask=st_mask, other=0.0)
    else:
        h = tl.zeros((BLOCK_D, NP), dtype=tl.float32)

    for i in range(0, n_chunks):
        if ADJOINT:
            k = n_chunks - 1 - i
        else:
            k = i
        if ADJOINT:
            tl.store(out_ptr + st_off + k * N, h, mask=st_mask)
        else:
            if k % store_every == 0:
                tl.store(out_ptr + st_off + (k // store_every) * N, h, mask=st_mask)
        pos = k * T + offs_t
        mask_t = pos < L
        idx = _token_index(pos, L, REVERSE, IDX64)
        m2 = mask_t[None, :]
        delta = tl.load(dt_base + idx[None, :] * sdt_l, mask=m2, other=0.0).to(tl.float32)
        dt = _step_size(delta, bias, m2, SOFTPLUS)
        x = tl.load(x_base + idx[None, :] * sx_l, mask=m2, other=0.0).to(tl.float32)
        w = tl.load(w_base + idx[None, :] * sw_l, mask=mask_n[:, None] & m2, other=0.0).to(tl.float32)
        cum = tl.cumsum(dt, axis=1)
        S = tl.sum(dt, axis=1)
        if ADJOINT:
            if HAS_Z:
                zz = tl.load(z_base + idx[None, :] * sz_l, mask=m2, other=0.0).to(tl.float32)
                x = x * zz * tl.sigmoid(zz)
            expo = cum
        else:
            x = x * dt
            expo = S[:, None] - cum
        wt = tl.exp2(A2[:, :, None] * expo[:, None, :])
        contrib = tl.sum(wt * x[:, None, :] * w[None, :, :], axis=2)
        h = tl.exp2(A2 * S[:, None]) * h + contrib


@triton.jit
def _chunk_grads(
    A, Dv, bias, h0, R, u, delta, delta_nx, dout, zz, Bt, Ct, m2, mask_nx, is_last, g_off,
    du_ptr, ddelta_ptr, dz_ptr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    """Gradients of one chunk of a (channels, states, T) tile: stores du, d(delta) and dz at `g_off`
    and returns what the callers reduce (a, gs, hs, dt, dtu, dy, ga, ddelta)."""
    A2 = A * 1.4426950408889634
    dt = _step_size(delta, bias, m2, SOFTPLUS)
    dt_nx = _step_size(delta_nx, bias, mask_nx[None, :], SOFTPLUS)

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
        tl.store(dz_ptr + g_off, dz.to(dz_ptr.dtype.element_ty), mask=m2)
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
    return a, gs, hs, dt, dtu, dy, ga, ddelta


@triton.jit(
    do_not_specialize=["dim", "L", "N", "dim_per_group", "n_groups", "n_slices", "slice_len", "n_chunks", "k_offset"]
)
def _bwd_kernel(
    u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks, k_offset,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, sg_b, sg_d,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    pid = tl.program_id(0)
    k = tl.program_id(1) + k_offset
    sl = pid % n_slices
    g = (pid // n_slices) % n_groups
    b = pid // (n_slices * n_groups)
    b64 = b.to(tl.int64)
    offs_n = tl.arange(0, NP)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    pos = k * T + offs_t
    mask_t = pos < L
    idx = _token_index(pos, L, REVERSE, IDX64)
    # the next visited token, for a_{t+1} in the adjoint recurrence g_t = c_t + a_{t+1} g_{t+1}
    mask_nx = (pos + 1 < L) & (offs_t < T - 1)
    idx_nx = _token_index(pos + 1, L, REVERSE, IDX64)
    m2 = mask_t[None, :]
    mnt = mask_n[:, None] & m2
    is_last = (offs_t == T - 1)[None, None, :]

    Bt = tl.load(B_ptr + b64 * sB_b + g.to(tl.int64) * sB_g + offs_n[:, None] * sB_n + idx[None, :] * sB_l,
                 mask=mnt, other=0.0).to(tl.float32)
    Ct = tl.load(C_ptr + b64 * sC_b + g.to(tl.int64) * sC_g + offs_n[:, None] * sC_n + idx[None, :] * sC_l,
                 mask=mnt, other=0.0).to(tl.float32)
    dB_acc = tl.zeros((NP, T), dtype=tl.float32)
    dC_acc = tl.zeros((NP, T), dtype=tl.float32)

    d_first = g * dim_per_group + sl * slice_len
    for d0 in range(d_first, d_first + slice_len, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        offs_d64 = offs_d[:, None].to(tl.int64)
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0.0)
        Dv = tl.load(D_ptr + offs_d)
        bias = tl.load(bias_ptr + offs_d)
        st_off = ((b64 * dim + offs_d64) * n_chunks + k) * N + offs_n[None, :]
        h0 = tl.load(hst_ptr + st_off, mask=mask_n[None, :], other=0.0)
        R = tl.load(adj_ptr + st_off, mask=mask_n[None, :], other=0.0)

        u = tl.load(u_ptr + b64 * su_b + offs_d64 * su_d + idx[None, :] * su_l, mask=m2, other=0.0).to(tl.float32)
        dt_ptrs = delta_ptr + b64 * sdt_b + offs_d64 * sdt_d
        delta = tl.load(dt_ptrs + idx[None, :] * sdt_l, mask=m2, other=0.0).to(tl.float32)
        delta_nx = tl.load(dt_ptrs + idx_nx[None, :] * sdt_l, mask=mask_nx[None, :], other=0.0).to(tl.float32)
        dout = tl.load(dout_ptr + b64 * sdo_b + offs_d64 * sdo_d + idx[None, :] * sdo_l, mask=m2, other=0.0).to(tl.float32)
        if HAS_Z:
            zz = tl.load(z_ptr + b64 * sz_b + offs_d64 * sz_d + idx[None, :] * sz_l, mask=m2, other=0.0).to(tl.float32)
        else:
            zz = dout  # placeholder of the same type; unused
        g_off = b64 * sg_b + offs_d64 * sg_d + idx[None, :]
        a, gs, hs, dt, dtu, dy, ga, ddelta = _chunk_grads(
            A, Dv, bias, h0, R, u, delta, delta_nx, dout, zz, Bt, Ct, m2, mask_nx, is_last, g_off,
            du_ptr, ddelta_ptr, dz_ptr, HAS_Z, SOFTPLUS)

        p_off = (b64 * n_chunks + k) * dim + offs_d
        tl.store(dA_ptr + p_off[:, None] * N + offs_n[None, :], tl.sum(ga * dt[:, None, :], axis=2), mask=mask_n[None, :])
        tl.store(dD_ptr + p_off, tl.sum(dy * u, axis=1))
        tl.store(dbias_ptr + p_off, tl.sum(ddelta, axis=1))
        dB_acc += tl.sum(gs * dtu[:, None, :], axis=0)
        dC_acc += tl.sum(hs * dy[:, None, :], axis=0)

    bc_off = ((b64 * n_slices + sl) * n_groups + g) * (N * L) + offs_n[:, None] * L + idx[None, :]
    tl.store(dB_ptr + bc_off, dB_acc, mask=mnt)
    tl.store(dC_ptr + bc_off, dC_acc, mask=mnt)


@triton.jit
def _walk_loads(
    k, L, b64, g, offs_d, offs_n, mask_n, offs_t, dim, N, n_chunks,
    u_ptr, delta_ptr, z_ptr, dout_ptr, B_ptr, C_ptr, hst_ptr,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, REVERSE: tl.constexpr, IDX64: tl.constexpr,
):
    """What chunk k of one channel block reads."""
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[None, :]
    idx = _token_index(pos, L, REVERSE, IDX64)
    mask_nx = (pos + 1 < L) & (offs_t < T - 1)
    idx_nx = _token_index(pos + 1, L, REVERSE, IDX64)
    mnt = mask_n[:, None] & m2
    offs_d64 = offs_d[:, None].to(tl.int64)
    Bt = tl.load(B_ptr + b64 * sB_b + g.to(tl.int64) * sB_g + offs_n[:, None] * sB_n + idx[None, :] * sB_l,
                 mask=mnt, other=0.0).to(tl.float32)
    Ct = tl.load(C_ptr + b64 * sC_b + g.to(tl.int64) * sC_g + offs_n[:, None] * sC_n + idx[None, :] * sC_l,
                 mask=mnt, other=0.0).to(tl.float32)
    h0 = tl.load(hst_ptr + ((b64 * dim + offs_d64) * n_chunks + k) * N + offs_n[None, :], mask=mask_n[None, :],
                 other=0.0)
    u = tl.load(u_ptr + b64 * su_b + offs_d64 * su_d + idx[None, :] * su_l, mask=m2, other=0.0).to(tl.float32)
    dt_ptrs = delta_ptr + b64 * sdt_b + offs_d64 * sdt_d
    delta = tl.load(dt_ptrs + idx[None, :] * sdt_l, mask=m2, other=0.0).to(tl.float32)
    delta_nx = tl.load(dt_ptrs + idx_nx[None, :] * sdt_l, mask=mask_nx[None, :], other=0.0).to(tl.float32)
    dout = tl.load(dout_ptr + b64 * sdo_b + offs_d64 * sdo_d + idx[None, :] * sdo_l, mask=m2, other=0.0).to(tl.float32)
    if HAS_Z:
        zz = tl.load(z_ptr + b64 * sz_b + offs_d64 * sz_d + idx[None, :] * sz_l, mask=m2, other=0.0).to(tl.float32)
    else:
        zz = dout  # placeholder of the same type; unused
    return Bt, Ct, h0, u, delta, delta_nx, dout, zz


@triton.jit(do_not_specialize=["dim", "L", "N", "dim_per_group", "n_dblk", "n_slices", "n_chunks"])
def _bwd_walk_kernel(
    u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, hst_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    dim, L, N, dim_per_group, n_dblk, n_slices, n_chunks,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, sg_b, sg_d,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, PREFETCH: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """Backward with the adjoint carried in registers: one program per (batch row, channel block) walks
    the chunks from last to first, so no adjoint carry pass runs and dA/dD/d(delta_bias) are summed
    over time in registers (one partial per batch row, reduced by torch.sum: no atomics)."""
    pid = tl.program_id(0)
    b = pid // n_dblk
    d0 = (pid % n_dblk) * BLOCK_D
    g = d0 // dim_per_group
    sl = (d0 % dim_per_group) // BLOCK_D
    b64 = b.to(tl.int64)
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_d64 = offs_d[:, None].to(tl.int64)
    offs_n = tl.arange(0, NP)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    is_last = (offs_t == T - 1)[None, None, :]
    is_first = (offs_t == 0)[None, None, :]

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0.0)
    Dv = tl.load(D_ptr + offs_d)
    bias = tl.load(bias_ptr + offs_d)
    st = (b64 * dim + offs_d64) * N + offs_n[None, :]
    R = tl.load(dlast_ptr + st, mask=mask_n[None, :], other=0.0)
    dA_acc = tl.zeros((BLOCK_D, NP), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    db_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    g_base = b64 * sg_b + offs_d64 * sg_d
    bc_base = ((b64 * n_slices + sl) * (dim // dim_per_group) + g) * (N * L) + offs_n[:, None] * L

    nxt = _walk_loads(n_chunks - 1, L, b64, g, offs_d, offs_n, mask_n, offs_t, dim, N, n_chunks,
                      u_ptr, delta_ptr, z_ptr, dout_ptr, B_ptr, C_ptr, hst_ptr,
                      su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                      sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, HAS_Z, REVERSE, IDX64)
    for i in range(0, n_chunks):
        k = n_chunks - 1 - i
        if PREFETCH:
            cur = nxt
            nxt = _walk_loads(tl.maximum(k - 1, 0), L, b64, g, offs_d, offs_n, mask_n, offs_t, dim, N, n_chunks,
                              u_ptr, delta_ptr, z_ptr, dout_ptr, B_ptr, C_ptr, hst_ptr,
                              su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                              sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, HAS_Z, REVERSE, IDX64)
        else:
            cur = _walk_loads(k, L, b64, g, offs_d, offs_n, mask_n, offs_t, dim, N, n_chunks,
                              u_ptr, delta_ptr, z_ptr, dout_ptr, B_ptr, C_ptr, hst_ptr,
                              su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                              sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, HAS_Z, REVERSE, IDX64)
        Bt, Ct, h0, u, delta, delta_nx, dout, zz = cur
        pos = k * T + offs_t
        m2 = (pos < L)[None, :]
        mnt = mask_n[:, None] & m2
        mask_nx = (pos + 1 < L) & (offs_t < T - 1)
        idx = _token_index(pos, L, REVERSE, IDX64)
        a, gs, hs, dt, dtu, dy, ga, ddelta = _chunk_grads(
            A, Dv, bias, h0, R, u, delta, delta_nx, dout, zz, Bt, Ct, m2, mask_nx, is_last, g_base + idx[None, :],
            du_ptr, ddelta_ptr, dz_ptr, HAS_Z, SOFTPLUS)
        R = tl.sum(tl.where(is_first, a * gs, 0.0), axis=2)  # a_{t0} g_{t0}: enters the chunk before
        dA_acc += tl.sum(ga * dt[:, None, :], axis=2)
        dD_acc += tl.sum(dy * u, axis=1)
        db_acc += tl.sum(ddelta, axis=1)
        tl.store(dB_ptr + bc_base + idx[None, :], tl.sum(gs * dtu[:, None, :], axis=0), mask=mnt)
        tl.store(dC_ptr + bc_base + idx[None, :], tl.sum(hs * dy[:, None, :], axis=0), mask=mnt)

    tl.store(dA_ptr + st, dA_acc, mask=mask_n[None, :])
    tl.store(dD_ptr + b64 * dim + offs_d, dD_acc)
    tl.store(dbias_ptr + b64 * dim + offs_d, db_acc)


# ----------------------------------------------------------------------------------------------
# wrappers


def _block_d(p: _Prep, tile: int, T: int) -> int:
    return _pow2_divisor(p.dim_per_group, max(1, tile // (p.NP * T)))


def _run_carry(p: _Prep, x, delta, z, w, init, n_chunks, T, store_every, adjoint, softplus, reverse):
    bd = _block_d(p, TILES["carry_tile"], T)
    n_dblk = p.dim // bd
    n_slots = n_chunks if adjoint else triton.cdiv(n_chunks, store_every)
    out = torch.empty((p.batch, p.dim, n_slots, p.N), device=x.device, dtype=torch.float32)
    _carry_kernel[(p.batch * n_dblk,)](
        x, delta, z if z is not None else x, p.A, w, p.bias, init if init is not None else out, out,
        p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_chunks, store_every, n_slots,
        *x.stride(), *delta.stride(), *_strides(z, 3), *w.stride(),
        ADJOINT=adjoint, HAS_Z=z is not None, SOFTPLUS=softplus, HAS_INIT=init is not None,
        REVERSE=reverse, IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T, num_warps=TILES["carry_warps"],
    )
    return out


def _walk_backward(p: _Prep, dout, dlast, u, delta, z, hst, n_chunks, T, bd, softplus, reverse, B, C, D, delta_bias):
    n_dblk = p.dim // bd
    n_slices = p.dim_per_group // bd
    grads = _Grads(p, u, delta, z, 1, n_slices)  # dA/dD/d(delta_bias): one partial per batch row
    _bwd_walk_kernel[(p.batch * n_dblk,)](
        u, delta, z if z is not None else u, dout, p.A, p.B, p.C, p.D, p.bias, hst, dlast, *grads.kernel_args(),
        p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_slices, n_chunks,
        *u.stride(), *delta.stride(), *_strides(z, 3), *dout.stride(), *p.B.stride(), *p.C.stride(),
        grads.du.stride(0), grads.du.stride(1),
        HAS_Z=z is not None, SOFTPLUS=softplus, PREFETCH=TILES["walk_prefetch"], REVERSE=reverse, IDX64=p.idx64,
        BLOCK_D=bd, NP=p.NP, T=T, num_warps=TILES["walk_warps"],
    )
    return grads.finish(B, C, D, delta_bias)


def triton_backward(
    dout: torch.Tensor,
    dlast: torch.Tensor,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    *,
    reverse: bool = False,
) -> list[torch.Tensor | None]:
    """Gradients for (u, delta, A, B, C, D, z, delta_bias); None for the absent optional inputs."""
    p = _Prep(u, delta, A, B, C, D, z, delta_bias)
    T = TILES["bwd_T"]
    n_chunks = triton.cdiv(p.L, T)
    softplus = bool(delta_softplus)
    dlast = dlast.to(torch.float32).contiguous()
    if TILES["v2_carry"]:  # the time-in-registers carry kernel of triton_scan.py
        from .triton_scan import _run_carry as run_carry_v2

        hst = run_carry_v2(p, u, delta, None, p.B, None, n_chunks, T, 1, False, softplus, reverse)
    else:
        hst = _run_carry(p, u, delta, None, p.B, None, n_chunks, T, 1, False, softplus, reverse)
    if TILES["walk"]:
        bd = _block_d(p, TILES["walk_tile"], T)
        if p.batch * (p.dim // bd) >= TILES["walk_min_programs"]:
            return _walk_backward(p, dout, dlast, u, delta, z, hst, n_chunks, T, bd, softplus, reverse, B, C, D,
                                  delta_bias)
    adj = _run_carry(p, dout, delta, z, p.C, dlast, n_chunks, T, 1, True, softplus, reverse)

    bd = _block_d(p, TILES["bwd_tile"], T)
    n_slices = p.slices(bd, n_chunks, TILES["target_programs"])
    grads = _Grads(p, u, delta, z, n_chunks, n_slices)
    for k_offset in range(0, n_chunks, 65535):  # the grid's second dimension holds 65535 at most
        _bwd_kernel[(p.batch * p.G * n_slices, min(65535, n_chunks - k_offset))](
            u, delta, z if z is not None else u, dout, p.A, p.B, p.C, p.D, p.bias, hst, adj, *grads.kernel_args(),
            p.dim, p.L, p.N, p.dim_per_group, p.G, n_slices, p.dim_per_group // n_slices, n_chunks, k_offset,
            *u.stride(), *delta.stride(), *_strides(z, 3), *dout.stride(), *p.B.stride(), *p.C.stride(),
            grads.du.stride(0), grads.du.stride(1),
            HAS_Z=z is not None, SOFTPLUS=softplus, REVERSE=reverse, IDX64=p.idx64,
            BLOCK_D=bd, NP=p.NP, T=T, num_warps=TILES["bwd_warps"],
        )
    return grads.finish(B, C, D, delta_bias)
