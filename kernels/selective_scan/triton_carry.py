"""Carry passes: the scan's state (or the backward's adjoint) at chunk starts, without a scan.

The state at a chunk's end is ``exp(A S) h + sum_t exp(A (S - cum_t)) x_t`` with S = sum dt over the
chunk, so walking the chunks of one (row, channel block) needs one reduction per chunk. The forward
uses it to split long sequences of a short batch into time segments; the backward to start every
chunk from its stored state and adjoint (`_carry_pair_kernel` runs both passes in one launch).
Tiles are time-major (T, BLOCK_D, NP), see `triton_fwd`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..intmath import cdiv
from ..launch import fast_launch
from .triton_common import (
    LOG2E,
    Prep,
    Tiles,
    _channel_block,
    _direction64,
    _load_tile,
    _step_size,
    _token_index,
    strides,
)

__all__ = ["run_carry", "run_carry_pair"]


@triton.jit
def _carry_loads(
    k, L, offs_t, x_base, dt_base, z_base, w_base, order_row, sx_l, sdt_l, sz_l, sw_l, mask_n,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, GATHER: tl.constexpr, IDX64: tl.constexpr, MASK_T: tl.constexpr,
):
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    idx = _token_index(pos, L, order_row, GATHER, IDX64)
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
    h, k, L, offs_t, delta, x, w, zz, A2, bias, scale,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr,
):
    """h carried over chunk k."""
    h, _S = _carry_step(h, k, L, offs_t, delta, x, w, zz, A2, bias, scale, ADJOINT, HAS_Z, SOFTPLUS, MASK_T)
    return h


@triton.jit
def _carry_step(
    h, k, L, offs_t, delta, x, w, zz, A2, bias, scale,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr,
):
    """h carried over chunk k, and the chunk's sum of step sizes per channel."""
    T: tl.constexpr = offs_t.shape[0]
    pos = k * T + offs_t
    m2 = (pos < L)[:, None]
    dt = _step_size(delta, bias[None, :], m2, SOFTPLUS, MASK_T)
    cum = tl.cumsum(dt, axis=0)
    S = tl.sum(dt, axis=0)
    if ADJOINT:
        x = x * scale
        if HAS_Z:
            x = x * zz * tl.sigmoid(zz)
        expo = cum
    else:
        x = x * dt
        expo = S[None, :] - cum
    wt = tl.exp2(A2[None, :, :] * expo[:, :, None])
    contrib = tl.sum(wt * x[:, :, None] * w[:, None, :], axis=0)
    return tl.exp2(A2 * S[:, None]) * h + contrib, S


@triton.jit
def _carry_body(
    pid, x_ptr, delta_ptr, z_ptr, A_ptr, w_ptr, bias_ptr, order_ptr, init_ptr, out_ptr, scale,
    K, dim, L, N, dim_per_group, n_dblk, n_chunks, store_every, n_slots,
    sx_b, sx_k, sx_d, sx_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l,
    sw_b, sw_k, sw_g, sw_n, sw_l,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_INIT: tl.constexpr,
    GATHER: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """States (ADJOINT=False; x = u, w = B) or adjoint carries (ADJOINT=True; x = dout, w = C).

    States: out[r, d, k // store_every, n] = h before chunk k, for k % store_every == 0.
    Adjoint: out[r, d, k, n] = R_{k+1}, the adjoint entering chunk k from the right, where
    R_k = a_{t0} g_{t0} at the chunk's first step t0; R_{n_chunks} = init (d last_state).
    """
    r, _, g, offs_d, offs_n, mask_n = _channel_block(pid, n_dblk, dim_per_group, N, BLOCK_D, NP)
    b64 = (r // K).to(tl.int64)
    kd = _direction64(r % K, IDX64)
    offs_t = tl.arange(0, T)
    offs_d64 = offs_d[None, :].to(tl.int64)

    A2 = tl.load(A_ptr + (kd * dim + offs_d[:, None]) * N + offs_n[None, :], mask=mask_n[None, :], other=0.0) * LOG2E
    bias = tl.load(bias_ptr + kd * dim + offs_d)
    order_row = order_ptr + kd * L
    x_base = x_ptr + b64 * sx_b + kd * sx_k + offs_d64 * sx_d
    dt_base = delta_ptr + b64 * sdt_b + kd * sdt_k + offs_d64 * sdt_d
    z_base = z_ptr + b64 * sz_b + kd * sz_k + offs_d64 * sz_d
    w_base = w_ptr + b64 * sw_b + kd * sw_k + g.to(tl.int64) * sw_g + offs_n[None, :] * sw_n
    st_off = (r.to(tl.int64) * dim + offs_d[:, None]) * (n_slots * N) + offs_n[None, :]
    st_mask = mask_n[None, :]

    if HAS_INIT:
        h = tl.load(init_ptr + (r.to(tl.int64) * dim + offs_d[:, None]) * N + offs_n[None, :], mask=st_mask, other=0.0)
    else:
        h = tl.zeros((BLOCK_D, NP), dtype=tl.float32)

    n_full = L // T
    if ADJOINT:
        if n_full < n_chunks:  # the partial last chunk comes first on the way back
            tl.store(out_ptr + st_off + n_full * N, h, mask=st_mask)
            cd, cx, cw, cz = _carry_loads(n_full, L, offs_t, x_base, dt_base, z_base, w_base, order_row,
                                          sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, GATHER, IDX64, True)
            h = _carry_compute(h, n_full, L, offs_t, cd, cx, cw, cz, A2, bias, scale, ADJOINT, HAS_Z, SOFTPLUS, True)
        if n_full > 0:
            # the loads of the next chunk visited are issued before this chunk is reduced
            nd, nx, nw, nz = _carry_loads(n_full - 1, L, offs_t, x_base, dt_base, z_base, w_base, order_row,
                                          sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, GATHER, IDX64, False)
            for i in range(0, n_full):
                k = n_full - 1 - i
                tl.store(out_ptr + st_off + k * N, h, mask=st_mask)
                cd, cx, cw, cz = nd, nx, nw, nz
                nd, nx, nw, nz = _carry_loads(tl.maximum(k - 1, 0), L, offs_t, x_base, dt_base, z_base, w_base,
                                              order_row, sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, GATHER,
                                              IDX64, False)
                h = _carry_compute(h, k, L, offs_t, cd, cx, cw, cz, A2, bias, scale, ADJOINT, HAS_Z, SOFTPLUS, False)
    else:
        if n_full > 0:
            nd, nx, nw, nz = _carry_loads(0, L, offs_t, x_base, dt_base, z_base, w_base, order_row,
                                          sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z, GATHER, IDX64, False)
            for k in range(0, n_full):
                if k % store_every == 0:
                    tl.store(out_ptr + st_off + (k // store_every) * N, h, mask=st_mask)
                cd, cx, cw, cz = nd, nx, nw, nz
                nd, nx, nw, nz = _carry_loads(tl.minimum(k + 1, n_full - 1), L, offs_t, x_base, dt_base, z_base,
                                              w_base, order_row, sx_l, sdt_l, sz_l, sw_l, mask_n, ADJOINT, HAS_Z,
                                              GATHER, IDX64, False)
                h = _carry_compute(h, k, L, offs_t, cd, cx, cw, cz, A2, bias, scale, ADJOINT, HAS_Z, SOFTPLUS, False)
        # the state after the last chunk is never needed: only its start is stored
        if n_full < n_chunks:
            if n_full % store_every == 0:
                tl.store(out_ptr + st_off + (n_full // store_every) * N, h, mask=st_mask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "L", "N", "dim_per_group", "n_dblk", "n_chunks", "store_every", "n_slots"])
def _carry_kernel(
    x_ptr, delta_ptr, z_ptr, A_ptr, w_ptr, bias_ptr, order_ptr, init_ptr, out_ptr, scale,
    K, dim, L, N, dim_per_group, n_dblk, n_chunks, store_every, n_slots,
    sx_b, sx_k, sx_d, sx_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l,
    sw_b, sw_k, sw_g, sw_n, sw_l,
    ADJOINT: tl.constexpr, HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_INIT: tl.constexpr,
    GATHER: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """One carry pass (see `_carry_body`), one program per (row, channel block)."""
    _carry_body(tl.program_id(0), x_ptr, delta_ptr, z_ptr, A_ptr, w_ptr, bias_ptr, order_ptr, init_ptr, out_ptr,
                scale, K, dim, L, N, dim_per_group, n_dblk, n_chunks, store_every, n_slots,
                sx_b, sx_k, sx_d, sx_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l,
                sw_b, sw_k, sw_g, sw_n, sw_l,
                ADJOINT, HAS_Z, SOFTPLUS, HAS_INIT, GATHER, IDX64, BLOCK_D, NP, T)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "L", "N", "dim_per_group", "n_dblk", "per_local", "n_local"])
def _carry_local_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, order_ptr, loc_ptr, ssum_ptr,
    K, dim, L, N, dim_per_group, n_dblk, per_local, n_local,
    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sB_b, sB_k, sB_g, sB_n, sB_l,
    SOFTPLUS: tl.constexpr, GATHER: tl.constexpr, IDX64: tl.constexpr,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """Program j x (rows x channel blocks) + (row x channel block): the state at the end of local segment j
    (chunks j * per_local to (j + 1) * per_local - 1, all full) started from zero, into loc (rows, n_local, D, N),
    and the segment's sum of step sizes into ssum (rows, n_local, D). `_carry_combine_kernel` chains them. The
    segments share grid axis 0 with the blocks (axis 1 stops at 65535: a sequence of ~1M tokens has more)."""
    blocks = tl.num_programs(0) // n_local
    j = tl.program_id(0) // blocks
    r, _, g, offs_d, offs_n, mask_n = _channel_block(tl.program_id(0) % blocks, n_dblk, dim_per_group, N, BLOCK_D, NP)
    b64 = (r // K).to(tl.int64)
    kd = _direction64(r % K, IDX64)
    offs_t = tl.arange(0, T)
    offs_d64 = offs_d[None, :].to(tl.int64)
    st_mask = mask_n[None, :]
    A2 = tl.load(A_ptr + (kd * dim + offs_d[:, None]) * N + offs_n[None, :], mask=st_mask, other=0.0) * LOG2E
    bias = tl.load(bias_ptr + kd * dim + offs_d)
    order_row = order_ptr + kd * L
    x_base = u_ptr + b64 * su_b + kd * su_k + offs_d64 * su_d
    dt_base = delta_ptr + b64 * sdt_b + kd * sdt_k + offs_d64 * sdt_d
    w_base = B_ptr + b64 * sB_b + kd * sB_k + g.to(tl.int64) * sB_g + offs_n[None, :] * sB_n
    h = tl.zeros((BLOCK_D, NP), dtype=tl.float32)
    S = tl.zeros((BLOCK_D,), dtype=tl.float32)
    k0 = j * per_local
    k_hi = k0 + per_local
    # the loads of the next chunk are issued before this chunk is reduced
    nd, nx, nw, nz = _carry_loads(k0, L, offs_t, x_base, dt_base, x_base, w_base, order_row, su_l, sdt_l, su_l,
                                  sB_l, mask_n, False, False, GATHER, IDX64, False)
    for k in range(k0, k_hi):
        cd, cx, cw, cz = nd, nx, nw, nz
        nd, nx, nw, nz = _carry_loads(tl.minimum(k + 1, k_hi - 1), L, offs_t, x_base, dt_base, x_base, w_base,
                                      order_row, su_l, sdt_l, su_l, sB_l, mask_n, False, False, GATHER, IDX64, False)
        h, s = _carry_step(h, k, L, offs_t, cd, cx, cw, cz, A2, bias, 1.0, False, False, SOFTPLUS, False)
        S += s
    at = (r.to(tl.int64) * n_local + j) * dim + offs_d
    tl.store(loc_ptr + at[:, None] * N + offs_n[None, :], h, mask=st_mask)
    tl.store(ssum_ptr + at, S)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "N", "dim_per_group", "n_dblk", "n_local", "every", "n_slots"])
def _carry_combine_kernel(
    A_ptr, loc_ptr, ssum_ptr, out_ptr, K, dim, N, dim_per_group, n_dblk, n_local, every, n_slots,
    BLOCK_D: tl.constexpr, NP: tl.constexpr,
):
    """One program per (row, channel block) chains the local segments' end states in order,
    h_{j+1} = exp(A S_j) h_j + loc_j from h_0 = 0, and stores the state at every `every`-th segment boundary:
    out[r, d, i, n] = the state before slot i (rows, D, n_slots, N)."""
    r, _, _, offs_d, offs_n, mask_n = _channel_block(tl.program_id(0), n_dblk, dim_per_group, N, BLOCK_D, NP)
    st_mask = mask_n[None, :]
    A2 = tl.load(A_ptr + ((r % K) * dim + offs_d[:, None]) * N + offs_n[None, :], mask=st_mask, other=0.0) * LOG2E
    r64 = r.to(tl.int64)
    out_at = (r64 * dim + offs_d[:, None]) * (n_slots * N) + offs_n[None, :]
    h = tl.zeros((BLOCK_D, NP), dtype=tl.float32)
    tl.store(out_ptr + out_at, h, mask=st_mask)
    if n_local > 0:
        at = r64 * n_local * dim + offs_d
        # segment j + 1's loads are issued before segment j is chained
        nxt_s = tl.load(ssum_ptr + at)
        nxt_h = tl.load(loc_ptr + at[:, None] * N + offs_n[None, :], mask=st_mask, other=0.0)
        for j in range(0, n_local):
            s, hl = nxt_s, nxt_h
            nat = at + tl.minimum(j + 1, n_local - 1) * dim
            nxt_s = tl.load(ssum_ptr + nat)
            nxt_h = tl.load(loc_ptr + nat[:, None] * N + offs_n[None, :], mask=st_mask, other=0.0)
            h = tl.exp2(A2 * s[:, None]) * h + hl
            if (j + 1) % every == 0:
                tl.store(out_ptr + out_at + ((j + 1) // every) * N, h, mask=st_mask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit(do_not_specialize=["K", "dim", "L", "N", "dim_per_group", "n_dblk", "n_chunks"])
def _carry_pair_kernel(
    u_ptr, dout_ptr, delta_ptr, z_ptr, A_ptr, B_ptr, C_ptr, bias_ptr, order_ptr, dlast_ptr, hst_ptr, adj_ptr, scale,
    K, dim, L, N, dim_per_group, n_dblk, n_chunks,
    su_b, su_k, su_d, su_l, sdo_b, sdo_d, sdo_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l,
    sB_b, sB_k, sB_g, sB_n, sB_l, sC_b, sC_k, sC_g, sC_n, sC_l,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr,
    GATHER: tl.constexpr, IDX64: tl.constexpr, BLOCK_D: tl.constexpr, NP: tl.constexpr, T: tl.constexpr,
):
    """Both carry passes of the backward in one launch: grid axis 1 picks states (0) or adjoint (1).

    The two passes are independent; side by side they give a short batch twice the programs.
    dout is (batch, D, L), shared by the directions (stride 0 over K). HAS_DLAST=False: no gradient reached the
    last states (dlast_ptr is not read; the adjoint starts from zero).
    """
    if tl.program_id(1) == 0:
        _carry_body(tl.program_id(0), u_ptr, delta_ptr, z_ptr, A_ptr, B_ptr, bias_ptr, order_ptr, hst_ptr, hst_ptr,
                    scale, K, dim, L, N, dim_per_group, n_dblk, n_chunks, 1, n_chunks,
                    su_b, su_k, su_d, su_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l,
                    sB_b, sB_k, sB_g, sB_n, sB_l,
                    False, HAS_Z, SOFTPLUS, False, GATHER, IDX64, BLOCK_D, NP, T)
    else:
        _carry_body(tl.program_id(0), dout_ptr, delta_ptr, z_ptr, A_ptr, C_ptr, bias_ptr, order_ptr, dlast_ptr,
                    adj_ptr, scale, K, dim, L, N, dim_per_group, n_dblk, n_chunks, 1, n_chunks,
                    sdo_b, 0, sdo_d, sdo_l, sdt_b, sdt_k, sdt_d, sdt_l, sz_b, sz_k, sz_d, sz_l,
                    sC_b, sC_k, sC_g, sC_n, sC_l,
                    True, HAS_Z, SOFTPLUS, HAS_DLAST, GATHER, IDX64, BLOCK_D, NP, T)


def _local_split(base_programs: int, n_slots: int, store_every: int, target: int) -> int:
    """Local segments per slot: the divisor of store_every nearest the count that gives the local pass `target`
    programs (the smaller on a tie). Nearest, not the next above: a prime store_every would otherwise cut every
    chunk apart, and the combine's chain (one step per local segment) would grow with it."""
    need = cdiv(target, max(1, base_programs * (n_slots - 1)))
    divisors = [m for m in range(1, store_every + 1) if store_every % m == 0]
    return min(divisors, key=lambda m: (abs(m - need), m))


def run_carry(p: Prep, u, delta, n_chunks: int, T: int, store_every: int, softplus: bool, tiles: Tiles):
    """Forward states at every `store_every`-th chunk start: (rows, D, slots, N) float32.

    Up to `tiles.carry_two_pass_min_chunks` chunks, one program per (row, channel block) walks them all
    (`_carry_kernel`, one launch). From there, two launches: the local pass computes each local segment's end
    state from zero (and its sum of step sizes) with the segments side by side, and the combine chains them per
    (row, channel block), one multiply-add of (channels, states) per segment. Local segments are store_every / m
    chunks, m the divisor of store_every nearest the count that gives the local pass `tiles.carry_min_programs`
    programs.
    The serial walk leaves a short batch's GPU mostly idle for the length of the sequence; the two passes cost
    a launch and two allocations more, which the host-bound small-batch steps that segment feel (NOTES.md)."""
    bd, warps = p.block_d(tiles.carry_dn, tiles.carry_warps)
    n_dblk = p.dim // bd
    n_slots = cdiv(n_chunks, store_every)
    out = torch.empty((p.rows, p.dim, n_slots, p.N), device=u.device, dtype=torch.float32)
    if n_chunks < tiles.carry_two_pass_min_chunks:
        _carry_kernel[(p.rows * n_dblk,)](
            u, delta, u, p.A, p.B, p.bias, p.index, out, out, p.scale,
            p.K, p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_chunks, store_every, n_slots,
            *u.stride(), *delta.stride(), *u.stride(), *p.B.stride(),
            ADJOINT=False, HAS_Z=False, SOFTPLUS=softplus, HAS_INIT=False,
            GATHER=p.gather, IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps,
        )
        return out
    m = _local_split(p.rows * n_dblk, n_slots, store_every, tiles.carry_min_programs)
    # only the segments before the last slot's start are needed; they hold full chunks only
    n_local = (n_slots - 1) * m
    # the local end states and the sums of step sizes in one allocation
    buf = torch.empty((p.rows * n_local * p.dim * (p.N + 1),), device=u.device, dtype=torch.float32)
    loc = buf[: p.rows * n_local * p.dim * p.N].view(p.rows, n_local, p.dim, p.N)
    ssum = buf[p.rows * n_local * p.dim * p.N:].view(p.rows, n_local, p.dim)
    if n_local:
        _carry_local_kernel[(n_local * p.rows * n_dblk,)](
            u, delta, p.A, p.B, p.bias, p.index, loc, ssum,
            p.K, p.dim, p.L, p.N, p.dim_per_group, n_dblk, store_every // m, n_local,
            *u.stride(), *delta.stride(), *p.B.stride(),
            SOFTPLUS=softplus, GATHER=p.gather, IDX64=p.idx64, BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps,
        )
    _carry_combine_kernel[(p.rows * n_dblk,)](
        p.A, loc, ssum, out, p.K, p.dim, p.N, p.dim_per_group, n_dblk, n_local, m, n_slots,
        BLOCK_D=bd, NP=p.NP, num_warps=warps,
    )
    return out


def run_carry_pair(p: Prep, u, dout, delta, z, dlast, n_chunks: int, T: int, softplus: bool, tiles: Tiles):
    """States and adjoint carries at every chunk start, both (rows, D, n_chunks, N), in one launch; dlast: the
    last states' gradient (rows, D, N) float32 contiguous, or None (zero)."""
    bd, warps = p.block_d(tiles.carry_dn, tiles.carry_warps)
    n_dblk = p.dim // bd
    hst = torch.empty((p.rows, p.dim, n_chunks, p.N), device=u.device, dtype=torch.float32)
    adj = torch.empty_like(hst)
    _carry_pair_kernel[(p.rows * n_dblk, 2)](
        u, dout, delta, z if z is not None else u, p.A, p.B, p.C, p.bias, p.index, dlast if dlast is not None else hst,
        hst, adj, p.scale,
        p.K, p.dim, p.L, p.N, p.dim_per_group, n_dblk, n_chunks,
        *u.stride(), *dout.stride(), *delta.stride(), *strides(z, 4), *p.B.stride(), *p.C.stride(),
        HAS_Z=z is not None, SOFTPLUS=softplus, HAS_DLAST=dlast is not None, GATHER=p.gather, IDX64=p.idx64,
        BLOCK_D=bd, NP=p.NP, T=T, num_warps=warps,
    )
    return hst, adj
