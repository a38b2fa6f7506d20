"""Triton forward of the selective scan, any number of directions in one launch.

Time is cut into chunks of T steps; inside a chunk the recurrence ``h_t = a_t h_{t-1} + x_t``
(a_t = exp(dt_t A), x_t = dt_t u_t B_t) is evaluated by `tl.associative_scan` on (a, x) pairs over a
(T, channels, states) register tile, and the state is carried from chunk to chunk in registers.
Time is the leading tile dim, so each thread owns all T steps of its (channel, state) pairs: the scan
is a chain in registers and only the sums over states cross lanes. Full chunks run without time
masks; the partial last chunk takes a masked copy of the same code. With ``SMID`` the tiles are
(T, states, channels) instead (the state h (NP, BLOCK_D)): Triton then gives the lanes to the channels
first (8 with BLOCK_D = 8) and the rest to the states (4), each thread holds NP / 4 states of a channel,
and the sum over states is mostly in-thread (`Tiles.fwd_smid`; such launches never cut time into
segments, and their chunk length depends on N and the program count).

K directions: when batch x channel blocks fill the GPU, one program per (batch row, channel block)
runs the K directions one after the other, each over its own visiting order, and adds each
direction's (gated, scaled) output into ``out`` at the tokens it visits: a deterministic sum with no
second pass. Otherwise each (batch row, direction) gets its own programs and writes its own slice of a
(batch, K, D, L) buffer that `torch.sum` reduces. Programs that still cannot fill the GPU cut time
into segments, whose start states come from `triton_carry`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..env import interpreting
from ..intmath import cdiv, next_pow2
from ..launch import fast_launch
from .op import new_out, sum_directions, token_major
from .triton_carry import run_carry
from .triton_common import (
    DEFAULT_TILES,
    LOG2E,
    Prep,
    Tiles,
    _channel_block,
    _combine,
    _direction64,
    _load_tile,
    _softplus,
    _step_size,
    _token_index,
    check_device,
    pow2_divisor,
    strides,
)

__all__ = ["triton_forward", "forward_walks"]


@triton.jit
def _fwd_loads(
    k, L, offs_t, u_base, dt_base, z_base, B_base, C_base, order_row, su_l, sdt_l, sz_l, sB_l, sC_l, mask_n,
    HAS_Z: tl.constexpr, GATHER: tl.constexpr, IDX64: tl.constexpr, MASK_T: tl.constexpr,
):
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    idx = _token_index(pos, L, order_row, GATHER, IDX64)
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
    h, k, L, offs_t, cur, order_row, o_base, so_l, A2, Dv, bias, scale, add,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, ACCUMULATE: tl.constexpr, GATHER: tl.constexpr,
    IDX64: tl.constexpr, MASK_T: tl.constexpr, SMID: tl.constexpr = False,
):
    """Chunk k: scan, write `scale` x the output (ACCUMULATE: add it to what is there when `add`);
    returns the state at the chunk's end (h: (BLOCK_D, NP), or (NP, BLOCK_D) with SMID)."""
    u, delta, Bt, Ct, zz = cur
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    # recomputed rather than carried from the prefetch: T more registers per thread otherwise
    idx = _token_index(pos, L, order_row, GATHER, IDX64)
    dt = _step_size(delta, bias[None, :], m2, SOFTPLUS, MASK_T)
    if SMID:
        a = tl.exp2(A2[None, :, :] * dt[:, None, :])
        x = (dt * u)[:, None, :] * Bt[:, :, None]
        # the carried state enters as part of the first step's input, so the scan's x is the state itself and
        # its products of a are unused (dead code); the other steps add a zero (sm_90a: no more instructions than
        # a where that keeps x there)
        x += tl.where((offs_t == 0)[:, None, None], a * h[None, :, :], 0.0)
        _, hs = tl.associative_scan((a, x), 0, _combine)
        y = tl.sum(hs * Ct[:, :, None], axis=1) + Dv[None, :] * u
    else:
        a = tl.exp2(A2[None, :, :] * dt[:, :, None])
        x = (dt * u)[:, :, None] * Bt[:, None, :]
        a_cum, x_cum = tl.associative_scan((a, x), 0, _combine)
        hs = a_cum * h[None, :, :] + x_cum
        y = tl.sum(hs * Ct[:, None, :], axis=2) + Dv[None, :] * u
    if HAS_Z:
        y = y * zz * tl.sigmoid(zz)
    o_ptrs = o_base + idx[:, None] * so_l
    y = y * scale
    if ACCUMULATE:
        # directions after the first add to what the earlier ones wrote (same program, after a barrier)
        y += tl.load(o_ptrs, mask=m2 & add, other=0.0).to(tl.float32)
    if MASK_T:
        tl.store(o_ptrs, y.to(o_base.dtype.element_ty), mask=m2)
    else:
        tl.store(o_ptrs, y.to(o_base.dtype.element_ty))
    # the padded steps of a partial chunk decay by 1 and add 0, so the last row is the chunk's end state
    return tl.sum(tl.where((offs_t == T - 1)[:, None, None], hs, 0.0), axis=0)


@triton.jit
def _store_state(h, k, st_base, store_every, N, st_mask, STORE: tl.constexpr):
    """With STORE, the state before chunk k at slot k // store_every (for the backward's chunks)."""
    if STORE:
        if k % store_every == 0:
            tl.store(st_base + (k // store_every) * N, h, mask=st_mask)


@triton.jit
def _fwd_direction(
    kd, b64, r64, seg, g, offs_d, offs_n, mask_n, offs_t, o_base, add,
    u_ptr, delta_ptr, z_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr, last_ptr, st_ptr, scale,
    dim, L, N, n_chunks, chunks_per_seg, n_seg, store_every, n_slots,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, PREFETCH: tl.constexpr,
    ACCUMULATE: tl.constexpr, STORE: tl.constexpr, GATHER: tl.constexpr, IDX64: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr, SMID: tl.constexpr,
):
    """Direction kd of batch row b over the chunks of segment `seg`: writes out, the last state and
    (STORE) the states at every `store_every`-th chunk start."""
    kd = _direction64(kd, IDX64)
    offs_d64 = offs_d[None, :].to(tl.int64)
    # the state tiles: (BLOCK_D, NP), or (NP, BLOCK_D) with SMID (states the middle dim of the chunk's tiles)
    if SMID:
        d2 = offs_d[None, :]
        n2 = offs_n[:, None]
        st_mask = mask_n[:, None]
    else:
        d2 = offs_d[:, None]
        n2 = offs_n[None, :]
        st_mask = mask_n[None, :]
    A2 = tl.load(A_ptr + (kd * dim + d2) * N + n2, mask=st_mask, other=0.0) * LOG2E
    Dv = tl.load(D_ptr + kd * dim + offs_d)
    bias = tl.load(bias_ptr + kd * dim + offs_d)
    order_row = order_ptr + kd * L
    u_base = u_ptr + b64 * su_b + kd * su_k + offs_d64 * su_d
    dt_base = delta_ptr + b64 * sdt_b + kd * sdt_k + offs_d64 * sdt_d
    z_base = z_ptr + b64 * sz_b + kd * sz_k + offs_d64 * sz_d
    B_base = B_ptr + b64 * sB_b + kd * sB_k + g.to(tl.int64) * sB_g + offs_n[None, :] * sB_n
    C_base = C_ptr + b64 * sC_b + kd * sC_k + g.to(tl.int64) * sC_g + offs_n[None, :] * sC_n
    if HAS_H0:
        h = tl.load(h0_ptr + ((r64 * dim + d2) * n_seg + seg) * N + n2, mask=st_mask, other=0.0)
    elif SMID:
        h = tl.zeros((NP, BLOCK_D), dtype=tl.float32)
    else:
        h = tl.zeros((BLOCK_D, NP), dtype=tl.float32)

    st_base = st_ptr + (r64 * dim + d2) * (n_slots * N) + n2
    k_start = seg * chunks_per_seg
    k_stop = tl.minimum(k_start + chunks_per_seg, n_chunks)
    n_full = L // T
    k_hi = tl.minimum(k_stop, n_full)
    if PREFETCH:
        # loads of chunk k + 1 are issued before chunk k is computed, hiding their latency
        if k_start < k_hi:
            nxt = _fwd_loads(k_start, L, offs_t, u_base, dt_base, z_base, B_base, C_base, order_row,
                             su_l, sdt_l, sz_l, sB_l, sC_l, mask_n, HAS_Z, GATHER, IDX64, False)
            for k in range(k_start, k_hi):
                _store_state(h, k, st_base, store_every, N, st_mask, STORE)
                cur = nxt
                nxt = _fwd_loads(tl.minimum(k + 1, k_hi - 1), L, offs_t, u_base, dt_base, z_base, B_base,
                                 C_base, order_row, su_l, sdt_l, sz_l, sB_l, sC_l, mask_n,
                                 HAS_Z, GATHER, IDX64, False)
                h = _fwd_compute(h, k, L, offs_t, cur, order_row, o_base, so_l, A2, Dv, bias, scale, add,
                                 HAS_Z, SOFTPLUS, ACCUMULATE, GATHER, IDX64, False, SMID)
    else:
        for k in range(k_start, k_hi):
            _store_state(h, k, st_base, store_every, N, st_mask, STORE)
            cur = _fwd_loads(k, L, offs_t, u_base, dt_base, z_base, B_base, C_base, order_row,
                             su_l, sdt_l, sz_l, sB_l, sC_l, mask_n, HAS_Z, GATHER, IDX64, False)
            h = _fwd_compute(h, k, L, offs_t, cur, order_row, o_base, so_l, A2, Dv, bias, scale, add,
                             HAS_Z, SOFTPLUS, ACCUMULATE, GATHER, IDX64, False, SMID)
    if k_stop > n_full:
        _store_state(h, n_full, st_base, store_every, N, st_mask, STORE)
        cur = _fwd_loads(n_full, L, offs_t, u_base, dt_base, z_base, B_base, C_base, order_row,
                         su_l, sdt_l, sz_l, sB_l, sC_l, mask_n, HAS_Z, GATHER, IDX64, True)
        h = _fwd_compute(h, n_full, L, offs_t, cur, order_row, o_base, so_l, A2, Dv, bias, scale, add,
                         HAS_Z, SOFTPLUS, ACCUMULATE, GATHER, IDX64, True, SMID)
    if seg == n_seg - 1:
        tl.store(last_ptr + (r64 * dim + d2) * N + n2, h, mask=st_mask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "L", "N", "dim_per_group", "n_dblk", "n_chunks", "chunks_per_seg", "n_seg"])
def _fwd_kernel(
    u_ptr, delta_ptr, z_ptr, out_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr, last_ptr, st_ptr,
    scale, K, dim, L, N, dim_per_group, n_dblk, n_chunks, chunks_per_seg, n_seg, store_every, n_slots,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_b, so_k, so_d, so_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, PREFETCH: tl.constexpr,
    MODE: tl.constexpr, STORE: tl.constexpr, GATHER: tl.constexpr, IDX64: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr, SMID: tl.constexpr = False,
):
    """MODE 0: one direction per program, out (batch, K, D, L) per direction (K = 1: the op's out).
    MODE 1: one program runs the K directions of its batch row in turn and adds them into out (batch, D, L)."""
    seg = tl.program_id(1)
    r, _, g, offs_d, offs_n, mask_n = _channel_block(tl.program_id(0), n_dblk, dim_per_group, N, BLOCK_D, NP)
    offs_t = tl.arange(0, T)
    if MODE == 0:
        r64 = r.to(tl.int64)
        b64 = (r // K).to(tl.int64)
        kd = _direction64(r % K, IDX64)
        o_base = out_ptr + b64 * so_b + kd * so_k + offs_d[None, :].to(tl.int64) * so_d
        _fwd_direction(kd, b64, r64, seg, g, offs_d, offs_n, mask_n, offs_t, o_base, False,
                       u_ptr, delta_ptr, z_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr, last_ptr,
                       st_ptr, scale, dim, L, N, n_chunks, chunks_per_seg, n_seg, store_every, n_slots,
                       su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_l,
                       sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
                       HAS_Z, SOFTPLUS, HAS_H0, PREFETCH, False, STORE, GATHER, IDX64, BLOCK_D, NP, T, SMID)
    else:
        b64 = r.to(tl.int64)
        o_base = out_ptr + b64 * so_b + offs_d[None, :].to(tl.int64) * so_d
        for kd in range(0, K):
            tl.debug_barrier()  # the previous direction's stores are visible to every thread of the program
            _fwd_direction(kd, b64, b64 * K + kd, seg, g, offs_d, offs_n, mask_n, offs_t, o_base, kd > 0,
                           u_ptr, delta_ptr, z_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr, last_ptr,
                           st_ptr, scale, dim, L, N, n_chunks, chunks_per_seg, n_seg, store_every, n_slots,
                           su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_l,
                           sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
                           HAS_Z, SOFTPLUS, HAS_H0, PREFETCH, True, STORE, GATHER, IDX64, BLOCK_D, NP, T, SMID)


# ----------------------------------------------------------------------------------------------
# the walking forward: one step at a time, a channel's states in one thread


@triton.jit
def _walk_loads(t, L, order_row, u_base, dt_base, z_base, B_base, C_base, su_l, sdt_l, sz_l, sB_l, sC_l, mask_n,
                HAS_Z: tl.constexpr, GATHER: tl.constexpr, IDX64: tl.constexpr, EVEN_N: tl.constexpr = False):
    """Step t's inputs: u, delta (and z) of the program's channels, B and C of its group (every state).
    EVEN_N: N is the padded state count (no state mask: B and C load as vectors where their states are contiguous)."""
    idx = _token_index(t, L, order_row, GATHER, IDX64)
    u = tl.load(u_base + idx * su_l).to(tl.float32)
    delta = tl.load(dt_base + idx * sdt_l).to(tl.float32)
    if EVEN_N:
        Bt = tl.load(B_base + idx * sB_l).to(tl.float32)
        Ct = tl.load(C_base + idx * sC_l).to(tl.float32)
    else:
        Bt = tl.load(B_base + idx * sB_l, mask=mask_n, other=0.0).to(tl.float32)
        Ct = tl.load(C_base + idx * sC_l, mask=mask_n, other=0.0).to(tl.float32)
    if HAS_Z:
        zz = tl.load(z_base + idx * sz_l).to(tl.float32)
    else:
        zz = u  # placeholder of the same type; unused
    return u, delta, Bt, Ct, zz, idx


@triton.jit
def _walk_direction(
    kd, b64, r64, seg, g, offs_d, offs_n, mask_n, o_base, add,
    u_ptr, delta_ptr, z_ptr, At_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr, last_ptr, scale,
    dim, L, N, chunks_per_seg, n_seg, T,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, ACCUMULATE: tl.constexpr,
    GATHER: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr,
    EVEN_N: tl.constexpr = False,
):
    """Direction kd of batch row b over the steps of segment `seg`, states-major (NP, BLOCK_D) tiles.

    A arrives transposed, (K, N, D) with channels contiguous: loads contiguous along channels make Triton
    lay the tiles out with lanes over channels and the NP states of a channel inside one thread, so
    the sum over states is a chain of register FMAs (A in (K, D, N) order gave lanes over states and
    shuffles). EVEN_N: N = NP, no state masks (sm_90a, Vim-S's walk: 215 instead of 273 instructions per
    step and thread)."""
    kd = _direction64(kd, IDX64)
    offs_d64 = offs_d.to(tl.int64)
    n_mask2 = mask_n[:, None]
    a_ptrs = At_ptr + (kd * N + offs_n[:, None]) * dim + offs_d[None, :]
    if EVEN_N:
        A2 = tl.load(a_ptrs) * LOG2E
    else:
        A2 = tl.load(a_ptrs, mask=n_mask2, other=0.0) * LOG2E
    Dv = tl.load(D_ptr + kd * dim + offs_d)
    bias = tl.load(bias_ptr + kd * dim + offs_d)
    order_row = order_ptr + kd * L
    u_base = u_ptr + b64 * su_b + kd * su_k + offs_d64 * su_d
    dt_base = delta_ptr + b64 * sdt_b + kd * sdt_k + offs_d64 * sdt_d
    z_base = z_ptr + b64 * sz_b + kd * sz_k + offs_d64 * sz_d
    B_base = B_ptr + b64 * sB_b + kd * sB_k + g.to(tl.int64) * sB_g + offs_n * sB_n
    C_base = C_ptr + b64 * sC_b + kd * sC_k + g.to(tl.int64) * sC_g + offs_n * sC_n
    if HAS_H0:
        h = tl.load(h0_ptr + ((r64 * dim + offs_d[None, :]) * n_seg + seg) * N + offs_n[:, None], mask=n_mask2,
                    other=0.0)
    else:
        h = tl.zeros((NP, BLOCK_D), dtype=tl.float32)
    t_start = seg * chunks_per_seg * T
    t_stop = tl.minimum(t_start + chunks_per_seg * T, L)
    if t_start < t_stop:
        # the next step's loads are issued before this step is computed
        nxt = _walk_loads(t_start, L, order_row, u_base, dt_base, z_base, B_base, C_base, su_l, sdt_l, sz_l, sB_l,
                          sC_l, mask_n, HAS_Z, GATHER, IDX64, EVEN_N)
        for t in range(t_start, t_stop):
            u, delta, Bt, Ct, zz, idx = nxt
            nxt = _walk_loads(tl.minimum(t + 1, t_stop - 1), L, order_row, u_base, dt_base, z_base, B_base, C_base,
                              su_l, sdt_l, sz_l, sB_l, sC_l, mask_n, HAS_Z, GATHER, IDX64, EVEN_N)
            dt = delta + bias
            if SOFTPLUS:
                dt = _softplus(dt, SOFTPLUS == 2)
            h = tl.exp2(A2 * dt[None, :]) * h + Bt[:, None] * (dt * u)[None, :]
            y = tl.sum(h * Ct[:, None], axis=0) + Dv * u
            if HAS_Z:
                y = y * zz * tl.sigmoid(zz)
            y = y * scale
            o_ptrs = o_base + idx * so_l
            if ACCUMULATE:
                # directions after the first add to what the earlier ones wrote (same program, after a barrier)
                y += tl.load(o_ptrs, mask=(offs_d >= 0) & add, other=0.0).to(tl.float32)
            tl.store(o_ptrs, y.to(o_base.dtype.element_ty))
    if seg == n_seg - 1:
        tl.store(last_ptr + (r64 * dim + offs_d[None, :]) * N + offs_n[:, None], h, mask=n_mask2)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "L", "N", "dim_per_group", "n_dblk", "chunks_per_seg", "n_seg", "T"])
def _fwd_walk_kernel(
    u_ptr, delta_ptr, z_ptr, out_ptr, At_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr, last_ptr,
    scale, K, dim, L, N, dim_per_group, n_dblk, chunks_per_seg, n_seg, T,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_b, so_k, so_d, so_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, MODE: tl.constexpr, GATHER: tl.constexpr,
    IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, EVEN_N: tl.constexpr = False,
):
    """`_fwd_kernel`'s grid and modes (MODE 0: a direction per program; 1: the K directions in turn, added
    into out), walking the steps one by one (no kept chunk-start states)."""
    seg = tl.program_id(1)
    r, _, g, offs_d, offs_n, mask_n = _channel_block(tl.program_id(0), n_dblk, dim_per_group, N, BLOCK_D, NP)
    if MODE == 0:
        r64 = r.to(tl.int64)
        b64 = (r // K).to(tl.int64)
        kd = _direction64(r % K, IDX64)
        o_base = out_ptr + b64 * so_b + kd * so_k + offs_d.to(tl.int64) * so_d
        _walk_direction(kd, b64, r64, seg, g, offs_d, offs_n, mask_n, o_base, False,
                        u_ptr, delta_ptr, z_ptr, At_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr, last_ptr,
                        scale, dim, L, N, chunks_per_seg, n_seg, T,
                        su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_l,
                        sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
                        HAS_Z, SOFTPLUS, HAS_H0, False, GATHER, IDX64, BLOCK_D, NP, EVEN_N)
    else:
        b64 = r.to(tl.int64)
        o_base = out_ptr + b64 * so_b + offs_d.to(tl.int64) * so_d
        for kd in range(0, K):
            tl.debug_barrier()  # the previous direction's stores are visible to every thread of the program
            _walk_direction(kd, b64, b64 * K + kd, seg, g, offs_d, offs_n, mask_n, o_base, kd > 0,
                            u_ptr, delta_ptr, z_ptr, At_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, order_ptr, h0_ptr,
                            last_ptr, scale, dim, L, N, chunks_per_seg, n_seg, T,
                            su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l, so_l,
                            sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
                            HAS_Z, SOFTPLUS, HAS_H0, True, GATHER, IDX64, BLOCK_D, NP, EVEN_N)


def _walk_block(tiles: Tiles, dim_per_group: int) -> tuple[int, int]:
    """The walking forward's channels per program and warps (lanes over channels only)."""
    bd = pow2_divisor(dim_per_group, tiles.fwd_walk_bd)
    return bd, max(1, min(tiles.fwd_walk_warps, bd // 32))


def _walks(tiles: Tiles, batch: int, dim_per_group: int, dim: int, NP: int, L: int, tokens_inner: bool,
           backward: bool) -> bool:
    """Whether a forward that keeps no states for a backward walks (`Tiles.fwd_walk`): 2 <= NP <= fwd_walk_max_np,
    and by default only where it was measured to pay: no backward to follow (inference), u and delta
    token-major (a step then reads each tensor's channels contiguously; channel-major rows cost a 32-byte
    sector per channel per step), at most fwd_walk_max_L tokens, and at least fwd_walk_min_programs (batch row,
    channel block) programs: with fewer, time segments and their carry pass make it the slower kernel (Vim-Ti
    at 1248, batch 8: NOTES.md)."""
    if tiles.fwd_walk is False or not 2 <= NP <= tiles.fwd_walk_max_np:
        return False
    if tiles.fwd_walk:
        return True
    return (not backward and tokens_inner and L <= tiles.fwd_walk_max_L
            and batch * (dim // _walk_block(tiles, dim_per_group)[0]) >= tiles.fwd_walk_min_programs)


def _smid_block(tiles: Tiles, p: Prep) -> int | None:
    """The channels per program where the chunk kernel lays its tiles (T, states, channels) (`Tiles.fwd_smid`), else
    None: for fwd_smid_min_np <= NP <= fwd_smid_max_np, where a warp's lanes fit in (states, channels) (else time
    would cross lanes), and by default from fwd_smid_min_programs (row, channel block) programs: with fewer, the
    states-last tiles' four warps per program (or their time segments) fill the GPU better."""
    if tiles.fwd_smid is False or not tiles.fwd_smid_min_np <= p.NP <= tiles.fwd_smid_max_np:
        return None
    bd = pow2_divisor(p.dim_per_group, tiles.fwd_smid_bd)
    if p.NP * bd < 32:
        return None
    return bd if tiles.fwd_smid is True or p.rows * (p.dim // bd) >= tiles.fwd_smid_min_programs else None


def forward_walks(batch: int, dim: int, N: int, L: int, tiles: Tiles = DEFAULT_TILES) -> bool:
    """Whether a forward without a backward walks when u and delta are token-major (models pick their layouts
    by it); N is the state size, dim the channels (one group), L the tokens."""
    return _walks(tiles, batch, dim, dim, next_pow2(N), L, True, False)


def _per_direction_out(out: torch.Tensor, K: int) -> torch.Tensor:
    """An empty (batch, K, D, L) whose K slices are each laid out as out (batch, D, L) and contiguous, so
    that summing them into out reads and writes memory in one order. In u's layout instead, a token-major
    out (the z gate's layout) turned the sum into a transposing add at a fraction of the copy speed (Vim-Ti
    at 1248, batch 8, H200: 6.0 ms of a 42 ms inference step, 24 adds)."""
    batch, dim, L = out.shape
    if token_major(out.unsqueeze(1)):
        return out.new_empty((K, batch, L, dim)).permute(1, 0, 3, 2)
    return out.new_empty((K, batch, dim, L)).transpose(0, 1)


def triton_forward(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    index: torch.Tensor | None,
    delta_softplus: bool,
    scale: float = 1.0,
    *,
    states_T: int = 0,
    backward: bool = True,
    split: bool = False,
    tiles: Tiles = DEFAULT_TILES,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Forward in the op's normal form (op.py): out (batch, D, L) in u's dtype (layout: `op.new_out`),
    last states (batch, K, D, N) float32, and with ``states_T`` the state before every states_T-th token,
    (batch x K, D, cdiv(L, states_T), N) float32 (else None). states_T must be a multiple of the forward's chunk
    length: `Tiles` fwd_T, fwd_T_n1 or fwd_T_wide, or with states-middle tiles fwd_smid_T x 16 / NP, doubled up to
    fwd_smid_long_max_programs programs.
    ``backward``: whether a backward may follow (the walking forward is picked by default only without one).
    ``split``: out is each direction's (gated, scaled) output, not their sum: (batch, K, D, L) stored (batch, L, K, D),
    so that its (batch x L, K x D) view is one matrix for a matmul that sums the directions itself."""
    check_device(u)
    p = Prep(u, delta, A, B, C, D, z, delta_bias, index, scale)
    out = u.new_empty((p.batch, p.L, p.K, p.dim)).permute(0, 2, 3, 1) if split else new_out(u, z)
    last = torch.empty((p.batch, p.K, p.dim, p.N), device=u.device, dtype=torch.float32)
    walk = not states_T and _walks(tiles, p.batch, p.dim_per_group, p.dim, p.NP, p.L,
                                   token_major(u) and token_major(delta), backward)
    smid_bd = None if walk else _smid_block(tiles, p)
    smid = smid_bd is not None
    if walk:
        T = tiles.fwd_T  # the walk steps one token at a time; T sets the granularity of time segments only
        bd, warps = _walk_block(tiles, p.dim_per_group)
    elif smid:
        bd, warps = smid_bd, max(1, min(tiles.fwd_smid_warps, smid_bd * p.NP // 32))
        T = tiles.fwd_smid_T * max(1, 16 // p.NP)  # about 32 values of a tile per thread
    elif p.NP >= 64:
        T, (bd, warps) = tiles.fwd_T_wide, p.block_d(tiles.fwd_dn_wide, tiles.fwd_warps_wide)
    else:
        T, (bd, warps) = tiles.fwd_T_n1 if p.NP == 1 else tiles.fwd_T, p.block_d(tiles.fwd_dn, tiles.fwd_warps)
    n_dblk = p.dim // bd
    # K > 1: one program runs all K directions of its batch row and adds them into out (no extra pass)
    # when batch x channel blocks fill the GPU; otherwise every direction gets its own programs and
    # writes its own (batch, K, D, L) slice, summed afterwards.
    loop = not split and p.K > 1 and p.batch * n_dblk >= (tiles.fwd_walk_loop_min_programs if walk
                                                           else tiles.fwd_loop_min_programs)
    dest = out if p.K == 1 or loop or split else _per_direction_out(out, p.K)
    programs = (p.batch if loop else p.rows) * n_dblk
    if smid and programs <= tiles.fwd_smid_long_max_programs:
        T *= 2  # every warp is resident: longer chunks give each more independent work
    n_chunks = cdiv(p.L, T)
    # Time segments when the programs cannot fill the GPU (not when directions add into one out)
    n_seg = 1 if loop or smid else max(1, min(n_chunks, tiles.fwd_min_programs // max(1, programs)))
    per_seg = cdiv(n_chunks, n_seg)
    n_seg = cdiv(n_chunks, per_seg)
    h0 = run_carry(p, u, delta, n_chunks, T, per_seg, bool(delta_softplus), tiles) if n_seg > 1 else None
    states, store_every, n_slots = None, 1, 1
    if states_T:
        if states_T % T:
            raise ValueError(f"triton_forward: states_T={states_T} must be a multiple of the chunk length {T}")
        store_every, n_slots = states_T // T, cdiv(p.L, states_T)
        states = torch.empty((p.rows, p.dim, n_slots, p.N), device=u.device, dtype=torch.float32)
    so = dest.stride() if dest.dim() == 4 else (dest.stride(0), 0, dest.stride(1), dest.stride(2))
    # without a backward the softplus's log is approximated on NVIDIA GPUs (`_softplus`; with one, the training
    # forward measured slower with it); the interpreter runs the exact one
    fast_log = tiles.fwd_fast_log and not backward and u.is_cuda and torch.version.hip is None and not interpreting()
    softplus = (2 if fast_log else 1) if delta_softplus else 0
    if walk:
        _fwd_walk_kernel[(programs, n_seg)](
            u, delta, z if z is not None else u, dest, p.A_t, p.B, p.C, p.D, p.bias,
            p.index, h0 if h0 is not None else last, last, p.scale,
            p.K, p.dim, p.L, p.N, p.dim_per_group, n_dblk, per_seg, n_seg, T,
            *u.stride(), *delta.stride(), *strides(z, 4), *so, *p.B.stride(), *p.C.stride(),
            HAS_Z=z is not None, SOFTPLUS=softplus, HAS_H0=h0 is not None, MODE=1 if loop else 0,
            GATHER=p.gather, IDX64=p.idx64, BLOCK_D=bd, NP=p.NP,
            EVEN_N=p.N == p.NP and p.NP >= tiles.fwd_walk_even_min_np, num_warps=warps,
        )
        if dest is not out:
            sum_directions(dest, out)
        return out, last, None
    _fwd_kernel[(programs, n_seg)](
        u, delta, z if z is not None else u, dest, p.A, p.B, p.C, p.D, p.bias, p.index,
        h0 if h0 is not None else last, last, states if states is not None else last, p.scale,
        p.K, p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_chunks, per_seg, n_seg, store_every, n_slots,
        *u.stride(), *delta.stride(), *strides(z, 4), *so, *p.B.stride(), *p.C.stride(),
        HAS_Z=z is not None, SOFTPLUS=softplus, HAS_H0=h0 is not None,
        PREFETCH=2 <= p.NP <= 16,  # N = 1 and N >= 32 measured no gain (register pressure)
        MODE=1 if loop else 0, STORE=states is not None, GATHER=p.gather, IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T,
        SMID=smid, num_warps=warps,
    )
    if dest is not out:
        sum_directions(dest, out)
    return out, last, states
