"""Triton kernels for the selective scan (Mamba-1 S6), forward and backward.

The math is stated in `reference.py`. Time is cut into chunks of T steps; inside a chunk the
recurrence ``h_t = a_t h_{t-1} + x_t`` (a_t = exp(dt_t A), x_t = dt_t u_t B_t) is evaluated by
`tl.associative_scan` on (a, x) pairs over a (T, channels, states) register tile, and the state is
carried from chunk to chunk. Nothing of size (batch, D, L, N) is ever stored. Time is the leading
tile dim so that each thread owns all T steps of its (channel, state) pairs: the scan is a chain in
registers and only the sums over states cross lanes. Full chunks run without time masks; the partial
last chunk takes a masked copy of the same code. N = 1 backward goes to `triton_scan_timelanes.py`,
whose time-across-lanes layout measured faster there (see NOTES.md for all timings).

Kernels (every one takes explicit strides and a `REVERSE` flag: position i of the scan reads token
L-1-i, so a flipped scan needs no copy):

- `_carry_kernel`: walks the chunks of a channel block and writes the state at chunk starts, with no
  scan: the state at a chunk's end is exp(A S) h + sum_t exp(A (S - cum_t)) x_t, S = sum dt. With
  ``ADJOINT`` it walks backwards and does the same for the adjoint of the backward pass.
  `_carry_pair_kernel` runs the two passes of the backward side by side in one launch.
- `_fwd_kernel`: one program per (batch row, channel block, segment of chunks); scans its chunks and
  writes the output. Segments let a short batch fill the GPU: their start states come from
  `_carry_kernel`.
- `_bwd_kernel`: one program per (batch row, group, channel slice, chunk), so every chunk runs in
  parallel; it reads the chunk's start state and adjoint carry from the two carry passes, recomputes
  the states in the chunk, runs the adjoint scan backwards (as flip + prefix scan, see
  `_reverse_scan`) and forms all gradients, loading channel block j + 1 while block j is computed.
  dB/dC are summed over the slice's channels in registers; dA/dD/d(delta_bias) are written per
  (batch, chunk) and reduced by `torch.sum`: no atomics, so results are bit-identical run to run.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["triton_forward", "triton_backward", "TILES"]

# Tile sizes (T = steps per chunk; dn = channels x states per program, which with 32 lanes x warps
# keeps time in-thread). Tests and the benchmark overwrite entries of this dict.
TILES: dict = {
    "fwd_T": 32,
    "fwd_T_n1": 16,  # N = 1: one state per thread leaves room for fewer steps only (no spills)
    "fwd_warps": 4,
    "fwd_dn": 128,  # channels x states per program (BLOCK_D * NP)
    "fwd_prefetch": True,  # 2 <= N <= 16: load chunk k + 1 before computing chunk k
    "bwd_T": 16,
    "bwd_T_n1": 8,
    "bwd_warps": 4,
    "bwd_dn": 128,
    "bwd_dn_grouped": 64,  # G > 1 (measured on G = 4: 6.6 vs 7.2 ms at 128 / 4 warps)
    "bwd_warps_grouped": 2,
    "carry_warps": 4,
    "carry_dn": 128,
    "carry_prefetch": True,  # load the next chunk before reducing this one
    "carry_pair": True,  # backward: the states and adjoint carry passes in one launch
    "bwd_prefetch": True,  # load channel block j + 1 before computing block j
    "target_programs": 1056,  # backward: ~8 programs per H100 SM before channel slices are added
    "fwd_target_programs": 264,  # forward: below this many programs time is cut into segments
    "n1_timelanes": True,  # N = 1 backward: triton_scan_timelanes (2x faster there on the H100)
}


# ----------------------------------------------------------------------------------------------
# jitted helpers
#
# Tiles are time-major: 2-D tiles are (T, BLOCK_D) or (T, NP) and 3-D tiles (T, BLOCK_D, NP). Triton's
# default layout spreads lanes and warps over the trailing (channel, state) dims first, so with
# BLOCK_D * NP >= 32 * num_warps every thread holds all T steps of its (channel, state) pairs and the
# scan along time runs sequentially in registers, without shuffles.


@triton.jit
def _combine(a_l, x_l, a_r, x_r):
    # (a_l, x_l) is the earlier part of the sequence: h = a_r * (a_l * h0 + x_l) + x_r
    return a_l * a_r, x_l * a_r + x_r


@triton.jit
def _reverse_scan(a, x):
    """Suffix scan of (a, x) pairs along axis 0, which must be held inside each thread.

    Written as flip, prefix scan, flip: for an axis inside the thread the flips are register
    renaming, while `associative_scan(reverse=True)` compiled to ~320 warp shuffles per tile
    (Triton 3.8, sm_90 SASS: 510 -> 200 shuffles per loop iteration of the backward kernel).
    """
    a_cum, x_cum = tl.associative_scan((tl.flip(a, 0), tl.flip(x, 0)), 0, _combine)
    return tl.flip(a_cum, 0), tl.flip(x_cum, 0)


@triton.jit
def _step_size(delta, bias, mask, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr = True):
    """dt = softplus(delta + bias) (or delta + bias); 0 where masked, so padding is a no-op step."""
    dt = delta + bias[None, :]
    if SOFTPLUS:
        dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(dt)))
    if MASK_T:
        dt = tl.where(mask, dt, 0.0)
    return dt


@triton.jit
def _token_index(pos, L, REVERSE: tl.constexpr, IDX64: tl.constexpr):
    if REVERSE:
        idx = L - 1 - pos
    else:
        idx = pos
    if IDX64:
        idx = idx.to(tl.int64)
    return idx


# ----------------------------------------------------------------------------------------------
# kernels


@triton.jit
def _load_tile(ptrs, mask, MASK_T: tl.constexpr):
    # Full chunks load without a time mask: a mask that varies along time blocks vector loads.
    if MASK_T:
        return tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    else:
        return tl.load(ptrs).to(tl.float32)


@triton.jit
def _store_tile(ptrs, value, mask, MASK_T: tl.constexpr):
    if MASK_T:
        tl.store(ptrs, value.to(ptrs.dtype.element_ty), mask=mask)
    else:
        tl.store(ptrs, value.to(ptrs.dtype.element_ty))


@triton.jit
def _carry_chunk(
    h, k, L, offs_t, x_base, dt_base, z_base, w_base, sx_l, sdt_l, sz_l, sw_l, A2, bias, mask_n,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr,
    IDX64: tl.constexpr, MASK_T: tl.constexpr,
):
    """The carry across chunk k: loads, then `_carry_compute`."""
    delta, x, w, zz = _carry_loads(k, L, offs_t, x_base, dt_base, z_base, w_base, sx_l, sdt_l, sz_l, sw_l, mask_n,
                                   ADJOINT, HAS_Z, REVERSE, IDX64, MASK_T)
    return _carry_compute(h, k, L, offs_t, delta, x, w, zz, A2, bias, ADJOINT, HAS_Z, SOFTPLUS, MASK_T)


@triton.jit
def _carry_loads(
    k, L, offs_t, x_base, dt_base, z_base, w_base, sx_l, sdt_l, sz_l, sw_l, mask_n,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr, IDX64: tl.constexpr, MASK_T: tl.constexpr,
):
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    idx = _token_index(pos, L, REVERSE, IDX64)
    delta = _load_tile(dt_base + idx[:, None] * sdt_l, m2, MASK_T)
    x = _load_tile(x_base + idx[:, None] * sx_l, m2, MASK_T)
    w = tl.load(w_base + idx[:, None] * sw_l, mask=m2 & mask_n[None, :], other=0.0).to(tl.float32)
    if ADJOINT and HAS_Z:
        zz = _load_tile(z_base + idx[:, None] * sz_l, m2, MASK_T)
    else:
        zz = x  # placeholder of the same type; unused
    return delta, x, w, zz


@triton.jit
def _carry_compute(
    h, k, L, offs_t, delta, x, w, zz, A2, bias,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr,
):
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    dt = _step_size(delta, bias, m2, SOFTPLUS, MASK_T)
    cum = tl.cumsum(dt, axis=0)
    S = tl.sum(dt, axis=0)
    if ADJOINT:
        if HAS_Z:
            x = x * zz * tl.sigmoid(zz)
        expo = cum
    else:
        x = x * dt
        expo = S[None, :] - cum
    wt = tl.exp2(A2[None, :, :] * expo[:, :, None])
    contrib = tl.sum(wt * x[:, :, None] * w[:, None, :], axis=0)
    return tl.exp2(A2 * S[:, None]) * h + contrib


@triton.jit
def _carry_body(
    pid, x_ptr, delta_ptr, z_ptr, A_ptr, w_ptr, bias_ptr, init_ptr, out_ptr,
    dim, L, N, dim_per_group, n_dblk, n_chunks, store_every, n_slots,
    sx_b, sx_d, sx_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l,
    sw_b, sw_g, sw_n, sw_l,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_INIT: tl.constexpr,
    PREFETCH: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """States (ADJOINT=False; x = u, w = B) or adjoint carries (ADJOINT=True; x = dout, w = C).

    States: out[b, d, k // store_every, n] = h before chunk k, for k % store_every == 0.
    Adjoint: out[b, d, k, n] = R_{k+1}, the adjoint entering chunk k from the right, where
    R_k = a_{t0} g_{t0} at the chunk's first step t0; R_{n_chunks} = init (d last_state).
    """
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
    x_base = x_ptr + b64 * sx_b + offs_d[None, :].to(tl.int64) * sx_d
    dt_base = delta_ptr + b64 * sdt_b + offs_d[None, :].to(tl.int64) * sdt_d
    z_base = z_ptr + b64 * sz_b + offs_d[None, :].to(tl.int64) * sz_d
    w_base = w_ptr + b64 * sw_b + g.to(tl.int64) * sw_g + offs_n[None, :] * sw_n
    st_off = (b64 * dim + offs_d[:, None]) * (n_slots * N) + offs_n[None, :]
    st_mask = mask_n[None, :]

    if HAS_INIT:
        h = tl.load(init_ptr + (b64 * dim + offs_d[:, None]) * N + offs_n[None, :], mask=st_mask, other=0.0)
    else:
        h = tl.zeros((BLOCK_D, NP), dtype=tl.float32)

    n_full = L // T
    if ADJOINT:
        if n_full < n_chunks:  # the partial last chunk comes first on the way back
            tl.store(out_ptr + st_off + n_full * N, h, mask=st_mask)
            h = _carry_chunk(h, n_full, L, offs_t, x_base, dt_base, z_base, w_base, sx_l, sdt_l, sz_l, sw_l,
                             A2, bias, mask_n, ADJOINT, HAS_Z, SOFTPLUS, REVERSE, IDX64, True)
        if PREFETCH:
            # the loads of the next chunk visited are issued before this chunk is reduced
            if n_full > 0:
                nd, nx, nw, nz = _carry_loads(n_full - 1, L, offs_t, x_base, dt_base, z_base, w_base,
                                              sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, REVERSE, IDX64, False)
                for i in range(0, n_full):
                    k = n_full - 1 - i
                    tl.store(out_ptr + st_off + k * N, h, mask=st_mask)
                    cd, cx, cw, cz = nd, nx, nw, nz
                    nd, nx, nw, nz = _carry_loads(tl.maximum(k - 1, 0), L, offs_t, x_base, dt_base, z_base, w_base,
                                                  sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, REVERSE, IDX64, False)
                    h = _carry_compute(h, k, L, offs_t, cd, cx, cw, cz, A2, bias, ADJOINT, HAS_Z, SOFTPLUS, False)
        else:
            for i in range(0, n_full):
                k = n_full - 1 - i
                tl.store(out_ptr + st_off + k * N, h, mask=st_mask)
                h = _carry_chunk(h, k, L, offs_t, x_base, dt_base, z_base, w_base, sx_l, sdt_l, sz_l, sw_l,
                                 A2, bias, mask_n, ADJOINT, HAS_Z, SOFTPLUS, REVERSE, IDX64, False)
    else:
        if PREFETCH:
            if n_full > 0:
                nd, nx, nw, nz = _carry_loads(0, L, offs_t, x_base, dt_base, z_base, w_base,
                                              sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, REVERSE, IDX64, False)
                for k in range(0, n_full):
                    if k % store_every == 0:
                        tl.store(out_ptr + st_off + (k // store_every) * N, h, mask=st_mask)
                    cd, cx, cw, cz = nd, nx, nw, nz
                    nd, nx, nw, nz = _carry_loads(tl.minimum(k + 1, n_full - 1), L, offs_t, x_base, dt_base, z_base,
                                                  w_base, sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, REVERSE,
                                                  IDX64, False)
                    h = _carry_compute(h, k, L, offs_t, cd, cx, cw, cz, A2, bias, ADJOINT, HAS_Z, SOFTPLUS, False)
        else:
            for k in range(0, n_full):
                if k % store_every == 0:
                    tl.store(out_ptr + st_off + (k // store_every) * N, h, mask=st_mask)
                h = _carry_chunk(h, k, L, offs_t, x_base, dt_base, z_base, w_base, sx_l, sdt_l, sz_l, sw_l,
                                 A2, bias, mask_n, ADJOINT, HAS_Z, SOFTPLUS, REVERSE, IDX64, False)
        # the state after the last chunk is never needed: only its start is stored
        if n_full < n_chunks:
            if n_full % store_every == 0:
                tl.store(out_ptr + st_off + (n_full // store_every) * N, h, mask=st_mask)


@triton.jit(do_not_specialize=["dim", "L", "N", "dim_per_group", "n_dblk", "n_chunks", "store_every", "n_slots"])
def _carry_kernel(
    x_ptr, delta_ptr, z_ptr, A_ptr, w_ptr, bias_ptr, init_ptr, out_ptr,
    dim, L, N, dim_per_group, n_dblk, n_chunks, store_every, n_slots,
    sx_b, sx_d, sx_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l,
    sw_b, sw_g, sw_n, sw_l,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_INIT: tl.constexpr,
    PREFETCH: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """One carry pass (see `_carry_body`), one program per (batch row, channel block)."""
    _carry_body(tl.program_id(0), x_ptr, delta_ptr, z_ptr, A_ptr, w_ptr, bias_ptr, init_ptr, out_ptr,
                dim, L, N, dim_per_group, n_dblk, n_chunks, store_every, n_slots,
                sx_b, sx_d, sx_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sw_b, sw_g, sw_n, sw_l,
                ADJOINT, HAS_Z, SOFTPLUS, HAS_INIT, PREFETCH, REVERSE, IDX64, BLOCK_D, NP, T)


@triton.jit(do_not_specialize=["dim", "L", "N", "dim_per_group", "n_dblk", "n_chunks"])
def _carry_pair_kernel(
    u_ptr, dout_ptr, delta_ptr, z_ptr, A_ptr, B_ptr, C_ptr, bias_ptr, dlast_ptr, hst_ptr, adj_ptr,
    dim, L, N, dim_per_group, n_dblk, n_chunks,
    su_b, su_d, su_l, sdo_b, sdo_d, sdo_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, PREFETCH: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """Both carry passes of the backward in one launch: grid axis 1 picks states (0) or adjoint (1).

    The two passes are independent; run side by side they give a short batch twice the programs.
    """
    if tl.program_id(1) == 0:
        _carry_body(tl.program_id(0), u_ptr, delta_ptr, z_ptr, A_ptr, B_ptr, bias_ptr, hst_ptr, hst_ptr,
                    dim, L, N, dim_per_group, n_dblk, n_chunks, 1, n_chunks,
                    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sB_b, sB_g, sB_n, sB_l,
                    False, HAS_Z, SOFTPLUS, False, PREFETCH, REVERSE, IDX64, BLOCK_D, NP, T)
    else:
        _carry_body(tl.program_id(0), dout_ptr, delta_ptr, z_ptr, A_ptr, C_ptr, bias_ptr, dlast_ptr, adj_ptr,
                    dim, L, N, dim_per_group, n_dblk, n_chunks, 1, n_chunks,
                    sdo_b, sdo_d, sdo_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sC_b, sC_g, sC_n, sC_l,
                    True, HAS_Z, SOFTPLUS, True, PREFETCH, REVERSE, IDX64, BLOCK_D, NP, T)


@triton.jit
def _fwd_chunk(
    h, k, L, offs_t, u_base, dt_base, z_base, o_base, B_base, C_base, su_l, sdt_l, sz_l, so_l, sB_l, sC_l,
    A2, Dv, bias, mask_n,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr, IDX64: tl.constexpr, MASK_T: tl.constexpr,
):
    """Chunk k of the forward: loads, then `_fwd_compute`; returns the state at the chunk's end."""
    u, delta, Bt, Ct, zz = _fwd_loads(k, L, offs_t, u_base, dt_base, z_base, B_base, C_base, su_l, sdt_l, sz_l,
                                      sB_l, sC_l, mask_n, HAS_Z, REVERSE, IDX64, MASK_T)
    return _fwd_compute(h, k, L, offs_t, u, delta, Bt, Ct, zz, o_base, so_l, A2, Dv, bias,
                        HAS_Z, SOFTPLUS, REVERSE, IDX64, MASK_T)


@triton.jit
def _fwd_loads(
    k, L, offs_t, u_base, dt_base, z_base, B_base, C_base, su_l, sdt_l, sz_l, sB_l, sC_l, mask_n,
    HAS_Z: tl.constexpr, REVERSE: tl.constexpr, IDX64: tl.constexpr, MASK_T: tl.constexpr,
):
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    idx = _token_index(pos, L, REVERSE, IDX64)
    mtn = m2 & mask_n[None, :]
    u = _load_tile(u_base + idx[:, None] * su_l, m2, MASK_T)
    delta = _load_tile(dt_base + idx[:, None] * sdt_l, m2, MASK_T)
    Bt = tl.load(B_base + idx[:, None] * sB_l, mask=mtn, other=0.0).to(tl.float32)
    Ct = tl.load(C_base + idx[:, None] * sC_l, mask=mtn, other=0.0).to(tl.float32)
    if HAS_Z:
        zz = _load_tile(z_base + idx[:, None] * sz_l, m2, MASK_T)
    else:
        zz = u  # placeholder of the same type; unused
    return u, delta, Bt, Ct, zz


@triton.jit
def _fwd_compute(
    h, k, L, offs_t, u, delta, Bt, Ct, zz, o_base, so_l, A2, Dv, bias,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr, IDX64: tl.constexpr, MASK_T: tl.constexpr,
):
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    idx = _token_index(pos, L, REVERSE, IDX64)
    dt = _step_size(delta, bias, m2, SOFTPLUS, MASK_T)
    a = tl.exp2(A2[None, :, :] * dt[:, :, None])
    x = (dt * u)[:, :, None] * Bt[:, None, :]
    a_cum, x_cum = tl.associative_scan((a, x), 0, _combine)
    hs = a_cum * h[None, :, :] + x_cum
    y = tl.sum(hs * Ct[:, None, :], axis=2) + Dv[None, :] * u
    if HAS_Z:
        y = y * zz * tl.sigmoid(zz)
    if MASK_T:
        tl.store(o_base + idx[:, None] * so_l, y.to(o_base.dtype.element_ty), mask=m2)
    else:
        tl.store(o_base + idx[:, None] * so_l, y.to(o_base.dtype.element_ty))
    # the padded steps of a partial chunk decay by 1 and add 0, so the last row is the chunk's end state
    return tl.sum(tl.where((offs_t == T - 1)[:, None, None], hs, 0.0), axis=0)


@triton.jit(do_not_specialize=["dim", "L", "N", "dim_per_group", "n_dblk", "n_chunks", "chunks_per_seg", "n_seg"])
def _fwd_kernel(
    u_ptr, delta_ptr, z_ptr, out_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, h0_ptr, last_ptr,
    dim, L, N, dim_per_group, n_dblk, n_chunks, chunks_per_seg, n_seg,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, so_b, so_d, so_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, PREFETCH: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    pid = tl.program_id(0)
    seg = tl.program_id(1)
    b = pid // n_dblk
    d0 = (pid % n_dblk) * BLOCK_D
    g = d0 // dim_per_group
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, NP)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    b64 = b.to(tl.int64)

    A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0.0) * 1.4426950408889634
    Dv = tl.load(D_ptr + offs_d)
    bias = tl.load(bias_ptr + offs_d)
    u_base = u_ptr + b64 * su_b + offs_d[None, :].to(tl.int64) * su_d
    dt_base = delta_ptr + b64 * sdt_b + offs_d[None, :].to(tl.int64) * sdt_d
    z_base = z_ptr + b64 * sz_b + offs_d[None, :].to(tl.int64) * sz_d
    o_base = out_ptr + b64 * so_b + offs_d[None, :].to(tl.int64) * so_d
    B_base = B_ptr + b64 * sB_b + g.to(tl.int64) * sB_g + offs_n[None, :] * sB_n
    C_base = C_ptr + b64 * sC_b + g.to(tl.int64) * sC_g + offs_n[None, :] * sC_n
    st_mask = mask_n[None, :]

    if HAS_H0:
        h = tl.load(h0_ptr + ((b64 * dim + offs_d[:, None]) * n_seg + seg) * N + offs_n[None, :], mask=st_mask, other=0.0)
    else:
        h = tl.zeros((BLOCK_D, NP), dtype=tl.float32)

    k_start = seg * chunks_per_seg
    k_stop = tl.minimum(k_start + chunks_per_seg, n_chunks)
    n_full = L // T
    k_hi = tl.minimum(k_stop, n_full)
    if PREFETCH:
        # loads of chunk k + 1 are issued before chunk k is computed, hiding their latency
        if k_start < k_hi:
            nu, nd, nB, nC, nz = _fwd_loads(k_start, L, offs_t, u_base, dt_base, z_base, B_base, C_base,
                                            su_l, sdt_l, sz_l, sB_l, sC_l, mask_n, HAS_Z, REVERSE, IDX64, False)
            for k in range(k_start, k_hi):
                u, delta, Bt, Ct, zz = nu, nd, nB, nC, nz
                nu, nd, nB, nC, nz = _fwd_loads(tl.minimum(k + 1, k_hi - 1), L, offs_t, u_base, dt_base, z_base,
                                                B_base, C_base, su_l, sdt_l, sz_l, sB_l, sC_l, mask_n,
                                                HAS_Z, REVERSE, IDX64, False)
                h = _fwd_compute(h, k, L, offs_t, u, delta, Bt, Ct, zz, o_base, so_l, A2, Dv, bias,
                                 HAS_Z, SOFTPLUS, REVERSE, IDX64, False)
    else:
        for k in range(k_start, k_hi):
            h = _fwd_chunk(h, k, L, offs_t, u_base, dt_base, z_base, o_base, B_base, C_base,
                           su_l, sdt_l, sz_l, so_l, sB_l, sC_l, A2, Dv, bias, mask_n,
                           HAS_Z, SOFTPLUS, REVERSE, IDX64, False)
    if k_stop > n_full:
        h = _fwd_chunk(h, n_full, L, offs_t, u_base, dt_base, z_base, o_base, B_base, C_base,
                       su_l, sdt_l, sz_l, so_l, sB_l, sC_l, A2, Dv, bias, mask_n,
                       HAS_Z, SOFTPLUS, REVERSE, IDX64, True)

    if seg == n_seg - 1:
        tl.store(last_ptr + (b64 * dim + offs_d[:, None]) * N + offs_n[None, :], h, mask=st_mask)


@triton.jit
def _bwd_loads(
    d0, k, b64, offs_n, mask_n, idx, idx_nx, m2, mask_nx, dim, N, n_chunks,
    u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    HAS_Z: tl.constexpr, MASK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Everything one channel block of one chunk reads besides B and C."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_d64 = offs_d[None, :].to(tl.int64)
    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_n[None, :], other=0.0)
    Dv = tl.load(D_ptr + offs_d)
    bias = tl.load(bias_ptr + offs_d)
    st_off = ((b64 * dim + offs_d[:, None]) * n_chunks + k) * N + offs_n[None, :]
    h0 = tl.load(hst_ptr + st_off, mask=mask_n[None, :], other=0.0)
    R = tl.load(adj_ptr + st_off, mask=mask_n[None, :], other=0.0)
    u = _load_tile(u_ptr + b64 * su_b + offs_d64 * su_d + idx[:, None] * su_l, m2, MASK_T)
    dt_ptrs = delta_ptr + b64 * sdt_b + offs_d64 * sdt_d
    delta = _load_tile(dt_ptrs + idx[:, None] * sdt_l, m2, MASK_T)
    delta_nx = tl.load(dt_ptrs + idx_nx[:, None] * sdt_l, mask=mask_nx[:, None], other=0.0).to(tl.float32)
    dout = _load_tile(dout_ptr + b64 * sdo_b + offs_d64 * sdo_d + idx[:, None] * sdo_l, m2, MASK_T)
    if HAS_Z:
        zz = _load_tile(z_ptr + b64 * sz_b + offs_d64 * sz_d + idx[:, None] * sz_l, m2, MASK_T)
    else:
        zz = dout  # placeholder of the same type; unused
    return A, Dv, bias, h0, R, u, delta, delta_nx, dout, zz


@triton.jit
def _bwd_compute(
    cur, d0, k, b64, idx, m2, mask_nx, mask_n, is_last, Bt, Ct, dB_acc, dC_acc,
    dim, N, n_chunks, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, sg_b, sg_d,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Gradients of one channel block of one chunk; returns the dB/dC accumulators."""
    A, Dv, bias, h0, R, u, delta, delta_nx, dout, zz = cur
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_d64 = offs_d[None, :].to(tl.int64)
    offs_n = tl.arange(0, A.shape[1])
    A2 = A * 1.4426950408889634
    dt = _step_size(delta, bias, m2, SOFTPLUS, MASK_T)
    dt_nx = _step_size(delta_nx, bias, mask_nx[:, None], SOFTPLUS)

    # states inside the chunk, from the stored chunk-start state
    a = tl.exp2(A2[None, :, :] * dt[:, :, None])
    dtu = dt * u
    x = dtu[:, :, None] * Bt[:, None, :]
    a_cum, x_cum = tl.associative_scan((a, x), 0, _combine)
    hs = a_cum * h0[None, :, :] + x_cum

    if HAS_Z:
        sz = tl.sigmoid(zz)
        y = tl.sum(hs * Ct[:, None, :], axis=2) + Dv[None, :] * u
        dz = dout * y * sz * (1.0 + zz * (1.0 - sz))
        _store_tile(dz_ptr + b64 * sg_b + offs_d64 * sg_d + idx[:, None], dz, m2, MASK_T)
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
    g_off = b64 * sg_b + offs_d64 * sg_d + idx[:, None]
    _store_tile(du_ptr + g_off, du, m2, MASK_T)
    _store_tile(ddelta_ptr + g_off, ddelta, m2, MASK_T)

    p_off = (b64 * n_chunks + k) * dim + offs_d
    tl.store(dA_ptr + p_off[:, None] * N + offs_n[None, :], tl.sum(ga * dt[:, :, None], axis=0), mask=mask_n[None, :])
    tl.store(dD_ptr + p_off, tl.sum(dy * u, axis=0))
    tl.store(dbias_ptr + p_off, tl.sum(ddelta, axis=0))
    return dB_acc + gs * dtu[:, :, None], dC_acc + hs * dy[:, :, None]


@triton.jit
def _bwd_chunk(
    k, b64, g, sl, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, sg_b, sg_d,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr, PREFETCH: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """All gradients of chunk k for the channel slice `sl` of group g of batch row b."""
    offs_n = tl.arange(0, NP)
    mask_n = offs_n < N
    offs_t = tl.arange(0, T)
    pos = k * T + offs_t
    mask_t = pos < L
    idx = _token_index(pos, L, REVERSE, IDX64)
    # the next visited token, for a_{t+1} in the adjoint recurrence g_t = c_t + a_{t+1} g_{t+1}
    mask_nx = (pos + 1 < L) & (offs_t < T - 1)
    idx_nx = _token_index(pos + 1, L, REVERSE, IDX64)
    m2 = mask_t[:, None]
    mtn = m2 & mask_n[None, :]
    is_last = (offs_t == T - 1)[:, None, None]

    Bt = tl.load(B_ptr + b64 * sB_b + g.to(tl.int64) * sB_g + offs_n[None, :] * sB_n + idx[:, None] * sB_l,
                 mask=mtn, other=0.0).to(tl.float32)
    Ct = tl.load(C_ptr + b64 * sC_b + g.to(tl.int64) * sC_g + offs_n[None, :] * sC_n + idx[:, None] * sC_l,
                 mask=mtn, other=0.0).to(tl.float32)
    # dB/dC are accumulated elementwise over channel blocks and reduced over channels once at the end
    dB_acc = tl.zeros((T, BLOCK_D, NP), dtype=tl.float32)
    dC_acc = tl.zeros((T, BLOCK_D, NP), dtype=tl.float32)

    d_first = g * dim_per_group + sl * slice_len
    d_last = d_first + slice_len - BLOCK_D
    if PREFETCH:
        # the next channel block's loads are issued before this block is computed
        nxt = _bwd_loads(d_first, k, b64, offs_n, mask_n, idx, idx_nx, m2, mask_nx, dim, N, n_chunks,
                         u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
                         su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                         HAS_Z, MASK_T, BLOCK_D)
        for d0 in range(d_first, d_first + slice_len, BLOCK_D):
            cur = nxt
            nxt = _bwd_loads(tl.minimum(d0 + BLOCK_D, d_last), k, b64, offs_n, mask_n, idx, idx_nx,
                             m2, mask_nx, dim, N, n_chunks, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, D_ptr, bias_ptr,
                             hst_ptr, adj_ptr, su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l,
                             sdo_b, sdo_d, sdo_l, HAS_Z, MASK_T, BLOCK_D)
            dB_acc, dC_acc = _bwd_compute(cur, d0, k, b64, idx, m2, mask_nx, mask_n, is_last, Bt, Ct, dB_acc, dC_acc,
                                          dim, N, n_chunks, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr,
                                          sg_b, sg_d, HAS_Z, SOFTPLUS, MASK_T, BLOCK_D)
    else:
        for d0 in range(d_first, d_first + slice_len, BLOCK_D):
            cur = _bwd_loads(d0, k, b64, offs_n, mask_n, idx, idx_nx, m2, mask_nx, dim, N, n_chunks,
                             u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
                             su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                             HAS_Z, MASK_T, BLOCK_D)
            dB_acc, dC_acc = _bwd_compute(cur, d0, k, b64, idx, m2, mask_nx, mask_n, is_last, Bt, Ct, dB_acc, dC_acc,
                                          dim, N, n_chunks, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr,
                                          sg_b, sg_d, HAS_Z, SOFTPLUS, MASK_T, BLOCK_D)

    bc_off = ((b64 * n_slices + sl) * n_groups + g) * (N * L) + offs_n[None, :] * L + idx[:, None]
    tl.store(dB_ptr + bc_off, tl.sum(dB_acc, axis=1), mask=mtn)
    tl.store(dC_ptr + bc_off, tl.sum(dC_acc, axis=1), mask=mtn)


@triton.jit(
    do_not_specialize=["dim", "L", "N", "dim_per_group", "n_groups", "n_slices", "slice_len", "n_chunks", "k_offset"]
)
def _bwd_kernel(
    u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, hst_ptr, adj_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks, k_offset,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, sg_b, sg_d,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, PREFETCH: tl.constexpr,
    REVERSE: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """Chunk-parallel backward: one program per (batch row, group, channel slice, chunk).

    Full chunks run without time masks; the partial last chunk (if any) takes the masked copy of the
    code inside the same launch and is scheduled first (as a launch of its own it ran batch x slices
    programs alone: 9% of the Vim-S backward on the H100).
    """
    pid = tl.program_id(0)
    k = n_chunks - 1 - (tl.program_id(1) + k_offset)  # last chunk first: the partial one starts early
    sl = pid % n_slices
    g = (pid // n_slices) % n_groups
    b64 = (pid // (n_slices * n_groups)).to(tl.int64)
    if k < L // T:
        _bwd_chunk(k, b64, g, sl, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, hst_ptr,
                   adj_ptr, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
                   dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks,
                   su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                   sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, sg_b, sg_d,
                   HAS_Z, SOFTPLUS, False, PREFETCH, REVERSE, IDX64, BLOCK_D, NP, T)
    else:
        _bwd_chunk(k, b64, g, sl, u_ptr, delta_ptr, z_ptr, dout_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, hst_ptr,
                   adj_ptr, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
                   dim, L, N, dim_per_group, n_groups, n_slices, slice_len, n_chunks,
                   su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sdo_b, sdo_d, sdo_l,
                   sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l, sg_b, sg_d,
                   HAS_Z, SOFTPLUS, True, PREFETCH, REVERSE, IDX64, BLOCK_D, NP, T)


# ----------------------------------------------------------------------------------------------
# wrappers


def _pow2_divisor(n: int, cap: int) -> int:
    """Largest power of two <= cap that divides n (>= 1)."""
    p = 1
    while p * 2 <= cap and n % (p * 2) == 0:
        p *= 2
    return p


def _strides(t: torch.Tensor | None, ndim: int) -> tuple:
    return tuple(t.stride()) if t is not None else (0,) * ndim


def _needs_idx64(*tensors) -> bool:
    """True where an offset inside one batch row could pass 2**31 elements."""
    for t in tensors:
        if t is None:
            continue
        span = sum((s - 1) * abs(st) for s, st in zip(t.shape[1:], t.stride()[1:]))
        if span >= 2**31 - 1:
            return True
    return False


class _Prep:
    """Shapes, parameter vectors and tile sizes shared by the forward and the backward."""

    def __init__(self, u, delta, A, B, C, D, z, delta_bias):
        self.batch, self.dim, self.L = u.shape
        self.N = A.shape[1]
        self.B = B if B.dim() == 4 else B.unsqueeze(1)
        self.C = C if C.dim() == 4 else C.unsqueeze(1)
        self.G = self.B.shape[1]
        self.dim_per_group = self.dim // self.G
        self.NP = triton.next_power_of_2(max(self.N, 1))
        self.A = A.to(torch.float32).contiguous()
        zeros = torch.zeros(self.dim, device=u.device, dtype=torch.float32)
        self.D = zeros if D is None else D.to(torch.float32).contiguous()
        self.bias = zeros if delta_bias is None else delta_bias.to(torch.float32).contiguous()
        self.idx64 = _needs_idx64(u, delta, z, self.B, self.C)

    def block_d(self, dn: int, warps: int) -> tuple[int, int]:
        """Channels per program and warps: lanes cover (channels, states) so time stays in-thread."""
        bd = _pow2_divisor(self.dim_per_group, max(1, dn // self.NP))
        return bd, max(1, min(warps, bd * self.NP // 32))

    def slices(self, block_d: int, programs_per_slice: int, want: int) -> int:
        """Channel slices per group (a power of two up to 8) until the launch has `want` programs.

        More slices fill the GPU but each adds one (batch, G, N, L) partial of dB and dC.
        """
        blocks, n = self.dim_per_group // block_d, 1
        while self.batch * self.G * n * programs_per_slice < want and blocks % (n * 2) == 0 and n < 8:
            n *= 2
        return n


class _Grads:
    """Gradient outputs of a backward and the fp32 partials its kernels write instead of atomics.

    dA/dD/d(delta_bias) partials are (batch, rows, D[, N]) and dB/dC partials (batch, slices, G, N, L);
    `finish` reduces them with `torch.sum`, so results are bit-identical run to run.
    """

    def __init__(self, p: _Prep, u, delta, z, rows: int, n_slices: int):
        dev, f32 = u.device, torch.float32
        self.du = torch.empty((p.batch, p.dim, p.L), device=dev, dtype=u.dtype)
        self.ddelta = torch.empty((p.batch, p.dim, p.L), device=dev, dtype=delta.dtype)
        self.dz = torch.empty((p.batch, p.dim, p.L), device=dev, dtype=z.dtype) if z is not None else None
        self.dA = torch.empty((p.batch, rows, p.dim, p.N), device=dev, dtype=f32)
        self.dD = torch.empty((p.batch, rows, p.dim), device=dev, dtype=f32)
        self.dbias = torch.empty((p.batch, rows, p.dim), device=dev, dtype=f32)
        self.dB = torch.empty((p.batch, n_slices, p.G, p.N, p.L), device=dev, dtype=f32)
        self.dC = torch.empty((p.batch, n_slices, p.G, p.N, p.L), device=dev, dtype=f32)

    def kernel_args(self) -> tuple:
        """The output pointers in the kernels' order (du, ddelta, dz, dA, dB, dC, dD, dbias)."""
        return (self.du, self.ddelta, self.dz if self.dz is not None else self.du,
                self.dA, self.dB, self.dC, self.dD, self.dbias)

    def finish(self, B, C, D, delta_bias) -> list[torch.Tensor | None]:
        """Gradients for (u, delta, A, B, C, D, z, delta_bias); None for the absent optional inputs."""
        dB = self.dB[:, 0] if self.dB.shape[1] == 1 else self.dB.sum(dim=1)
        dC = self.dC[:, 0] if self.dC.shape[1] == 1 else self.dC.sum(dim=1)
        dB = dB[:, 0] if B.dim() == 3 else dB
        dC = dC[:, 0] if C.dim() == 3 else dC
        dD = self.dD.sum(dim=(0, 1)) if D is not None else None
        dbias = self.dbias.sum(dim=(0, 1)) if delta_bias is not None else None
        return [self.du, self.ddelta, self.dA.sum(dim=(0, 1)), dB, dC, dD, self.dz, dbias]


def _run_carry(p: _Prep, x, delta, z, w, init, n_chunks, T, store_every, adjoint, softplus, reverse):
    bd, warps = p.block_d(TILES["carry_dn"], TILES["carry_warps"])
    n_dblk = p.dim // bd
    n_slots = n_chunks if adjoint else triton.cdiv(n_chunks, store_every)
    out = torch.empty((p.batch, p.dim, n_slots, p.N), device=x.device, dtype=torch.float32)
    _carry_kernel[(p.batch * n_dblk,)](
        x, delta, z if z is not None else x, p.A, w, p.bias, init if init is not None else out, out,
        p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_chunks, store_every, n_slots,
        *x.stride(), *delta.stride(), *_strides(z, 3), *w.stride(),
        ADJOINT=adjoint, HAS_Z=z is not None, SOFTPLUS=softplus, HAS_INIT=init is not None,
        PREFETCH=TILES["carry_prefetch"], REVERSE=reverse, IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps,
    )
    return out


def _run_carry_pair(p: _Prep, u, dout, delta, z, dlast, n_chunks, T, softplus, reverse):
    """States and adjoint carries at every chunk start, both passes in one launch."""
    bd, warps = p.block_d(TILES["carry_dn"], TILES["carry_warps"])
    n_dblk = p.dim // bd
    hst = torch.empty((p.batch, p.dim, n_chunks, p.N), device=u.device, dtype=torch.float32)
    adj = torch.empty_like(hst)
    _carry_pair_kernel[(p.batch * n_dblk, 2)](
        u, dout, delta, z if z is not None else u, p.A, p.B, p.C, p.bias, dlast, hst, adj,
        p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_chunks,
        *u.stride(), *dout.stride(), *delta.stride(), *_strides(z, 3), *p.B.stride(), *p.C.stride(),
        HAS_Z=z is not None, SOFTPLUS=softplus, PREFETCH=TILES["carry_prefetch"], REVERSE=reverse,
        IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps,
    )
    return hst, adj


def _check_device(u: torch.Tensor) -> None:
    if u.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise ValueError(
            f"selective_scan backend='triton': tensors are on {u.device}; the Triton kernels need CUDA "
            "tensors (or TRITON_INTERPRET=1, set before vssm is imported, to run them on the CPU)"
        )


def triton_forward(
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan forward; returns out (batch, D, L) in u's dtype and last_state (batch, D, N) fp32.

    ``reverse=True`` scans the tokens from L-1 down to 0 (out stays in token order).
    """
    _check_device(u)
    if u.dtype == torch.float64 or u.numel() == 0:
        return _reference_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)
    p = _Prep(u, delta, A, B, C, D, z, delta_bias)
    out = torch.empty((p.batch, p.dim, p.L), device=u.device, dtype=u.dtype)
    last = torch.empty((p.batch, p.dim, p.N), device=u.device, dtype=torch.float32)
    T = TILES["fwd_T_n1"] if p.NP == 1 else TILES["fwd_T"]
    n_chunks = triton.cdiv(p.L, T)
    bd, warps = p.block_d(TILES["fwd_dn"], TILES["fwd_warps"])
    n_dblk = p.dim // bd
    # Split time into segments when batch x channel blocks cannot fill the GPU.
    want = TILES["fwd_target_programs"]
    n_seg = max(1, min(n_chunks, want // max(1, p.batch * n_dblk)))
    per_seg = triton.cdiv(n_chunks, n_seg)
    n_seg = triton.cdiv(n_chunks, per_seg)
    h0 = None
    if n_seg > 1:
        h0 = _run_carry(p, u, delta, None, p.B, None, n_chunks, T, per_seg, False, delta_softplus, reverse)
    _fwd_kernel[(p.batch * n_dblk, n_seg)](
        u, delta, z if z is not None else u, out, p.A, p.B, p.C, p.D, p.bias, h0 if h0 is not None else last, last,
        p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_chunks, per_seg, n_seg,
        *u.stride(), *delta.stride(), *_strides(z, 3), *out.stride(), *p.B.stride(), *p.C.stride(),
        HAS_Z=z is not None, SOFTPLUS=bool(delta_softplus), HAS_H0=h0 is not None,
        PREFETCH=TILES["fwd_prefetch"] and 2 <= p.NP <= 16, REVERSE=reverse, IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps,
    )
    return out, last


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
    _check_device(u)
    if u.dtype == torch.float64 or u.numel() == 0:
        return _reference_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse)
    if A.shape[1] == 1 and TILES["n1_timelanes"]:
        from .triton_scan_timelanes import triton_backward as backward_n1

        return backward_n1(dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=reverse)
    p = _Prep(u, delta, A, B, C, D, z, delta_bias)
    T = TILES["bwd_T_n1"] if p.NP == 1 else TILES["bwd_T"]
    n_chunks = triton.cdiv(p.L, T)
    softplus = bool(delta_softplus)
    dlast = dlast.to(torch.float32).contiguous()
    grouped = "_grouped" if p.G > 1 else ""
    bd, warps = p.block_d(TILES["bwd_dn" + grouped], TILES["bwd_warps" + grouped])
    n_slices = p.slices(bd, n_chunks, TILES["target_programs"])
    if TILES["carry_pair"]:
        hst, adj = _run_carry_pair(p, u, dout, delta, z, dlast, n_chunks, T, softplus, reverse)
    else:
        hst = _run_carry(p, u, delta, None, p.B, None, n_chunks, T, 1, False, softplus, reverse)
        adj = _run_carry(p, dout, delta, z, p.C, dlast, n_chunks, T, 1, True, softplus, reverse)

    grads = _Grads(p, u, delta, z, n_chunks, n_slices)
    args = (u, delta, z if z is not None else u, dout, p.A, p.B, p.C, p.D, p.bias, hst, adj, *grads.kernel_args(),
            p.dim, p.L, p.N, p.dim_per_group, p.G, n_slices, p.dim_per_group // n_slices, n_chunks)
    strides = (*u.stride(), *delta.stride(), *_strides(z, 3), *dout.stride(), *p.B.stride(), *p.C.stride(),
               grads.du.stride(0), grads.du.stride(1))
    flags = dict(HAS_Z=z is not None, SOFTPLUS=softplus, PREFETCH=TILES["bwd_prefetch"], REVERSE=reverse,
                 IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps)
    for k_offset in range(0, n_chunks, 65535):  # the grid's second dimension holds 65535 at most
        _bwd_kernel[(p.batch * p.G * n_slices, min(65535, n_chunks - k_offset))](*args, k_offset, *strides, **flags)
    return grads.finish(B, C, D, delta_bias)


# ----------------------------------------------------------------------------------------------
# float64 (the kernels accumulate in float32) and empty inputs take the reference path


def _flip(t):
    return None if t is None else t.flip(-1)


def _reference_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse):
    from .reference import selective_scan_reference

    if reverse:
        out, last = selective_scan_reference(
            _flip(u), _flip(delta), A, _flip(B), _flip(C), D, _flip(z), delta_bias, delta_softplus, True
        )
        return out.flip(-1).contiguous(), last
    out, last = selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, True)
    return out.contiguous(), last


def _reference_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse):
    inputs = [u, delta, A, B, C, D, z, delta_bias]
    leaves = [None if t is None else t.detach().requires_grad_(True) for t in inputs]
    with torch.enable_grad():
        out, last = _reference_forward(*leaves, delta_softplus, reverse)
        wrt = [t for t in leaves if t is not None]
        # with L = 0 the last state is a constant zero: only outputs that depend on inputs take part
        pairs = [(o, g) for o, g in ((out, dout), (last, dlast)) if o.requires_grad]
        grads = [None] * len(wrt)
        if pairs:
            grads = torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True)
        grads = iter(grads)
    res = []
    for t in leaves:
        g = None if t is None else next(grads)
        res.append(None if t is None else (torch.zeros_like(t) if g is None else g))
    return res

