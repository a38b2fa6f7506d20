"""Triton kernels of the LayerNorm op (see `op.py` for the definition).

x is (M, C) with unit stride along C, rows read through their stride (a view of a wider tensor needs
no copy); a tile is BLOCK_M rows x BLOCK_C (the power of two >= C) columns, so a whole row sits in one
program and its sums are in-register reductions.

Forward: one program per BLOCK_M rows; two passes over the registers (the mean, then the variance of
x - mean: no cancellation for rows far from zero), y in the output dtype, mean and rstd (float32, one
(2, M) tensor: one allocation) kept for the backward.
Backward: each program walks a run of consecutive row blocks; dx row by row from the two row sums of
the module formula; the parameters' gradients are summed elementwise over the program's rows and
reduced once at the end into one float32 row per program; a second kernel sums those rows over the
programs in a fixed order into dweight and dbias (deterministic, no atomics).

Tile sizes are not measured on a GPU yet (tools/bench_norm.py times them).
"""

from __future__ import annotations

import dataclasses
import functools

import torch
import triton
import triton.language as tl

from ..intmath import cdiv, next_pow2
from ..launch import fast_launch


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _ln_fwd(
    x, w, b, y, stats,
    M, C, sxm, sym, eps,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < M
    cmask = cols < C
    m = rmask[:, None] & cmask[None, :]
    r64 = rows.to(tl.int64)
    xv = tl.load(x + r64[:, None] * sxm + cols[None, :], mask=m, other=0.0).to(tl.float32)
    mu = tl.sum(xv, axis=1) / C
    d = tl.where(m, xv - mu[:, None], 0.0)
    var = tl.sum(d * d, axis=1) / C
    rs = 1.0 / tl.sqrt(var + eps)
    out = d * rs[:, None]
    if HAS_W:
        out = out * tl.load(w + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    if HAS_B:
        out = out + tl.load(b + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    tl.store(y + r64[:, None] * sym + cols[None, :], out.to(y.dtype.element_ty), mask=m)
    tl.store(stats + rows, mu, mask=rmask)  # row 0 of stats: the means, row 1 (M further): the rstds
    tl.store(stats + M + rows, rs, mask=rmask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _ln_bwd(
    dy, x, w, stats, dx, part,
    M, C, sxm, sdym, sdxm, n_blocks, blocks_per_program, n_programs,
    HAS_W: tl.constexpr, NEED_DW: tl.constexpr, NEED_DB: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < C
    if HAS_W:
        wv = tl.load(w + cols, mask=cmask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    db_acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    first = pid * blocks_per_program
    for blk in range(first, tl.minimum(first + blocks_per_program, n_blocks)):
        rows = blk * BLOCK_M + tl.arange(0, BLOCK_M)
        rmask = rows < M
        m = rmask[:, None] & cmask[None, :]
        r64 = rows.to(tl.int64)
        xv = tl.load(x + r64[:, None] * sxm + cols[None, :], mask=m, other=0.0).to(tl.float32)
        g = tl.load(dy + r64[:, None] * sdym + cols[None, :], mask=m, other=0.0).to(tl.float32)
        mu = tl.load(stats + rows, mask=rmask, other=0.0)
        rs = tl.load(stats + M + rows, mask=rmask, other=0.0)
        xhat = tl.where(m, (xv - mu[:, None]) * rs[:, None], 0.0)
        if HAS_W:
            wdy = g * wv[None, :]
        else:
            wdy = g
        c1 = tl.sum(xhat * wdy, axis=1) / C
        c2 = tl.sum(wdy, axis=1) / C
        dxv = (wdy - xhat * c1[:, None] - c2[:, None]) * rs[:, None]
        tl.store(dx + r64[:, None] * sdxm + cols[None, :], dxv.to(dx.dtype.element_ty), mask=m)
        if NEED_DW:
            dw_acc += xhat * g
        if NEED_DB:
            db_acc += g
    # part is (2, n_programs, C): dweight partials in its first half, dbias partials in its second
    if NEED_DW:
        tl.store(part + pid * C + cols, tl.sum(dw_acc, axis=0), mask=cmask)
    if NEED_DB:
        tl.store(part + (n_programs + pid) * C + cols, tl.sum(db_acc, axis=0), mask=cmask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _ln_finish(
    part, dw, db, P, C,
    NEED_DW: tl.constexpr, NEED_DB: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """dweight / dbias: the backward's per-program partials summed over programs, always in the same order."""
    cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cols < C
    acc_w = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for p0 in range(0, P, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        m = (p < P)[:, None] & cmask[None, :]
        offs = p[:, None] * C + cols[None, :]
        if NEED_DW:
            acc_w += tl.load(part + offs, mask=m, other=0.0)
        if NEED_DB:
            acc_b += tl.load(part + P * C + offs, mask=m, other=0.0)
    if NEED_DW:
        tl.store(dw + cols, tl.sum(acc_w, axis=0).to(dw.dtype.element_ty), mask=cmask)
    if NEED_DB:
        tl.store(db + cols, tl.sum(acc_b, axis=0).to(db.dtype.element_ty), mask=cmask)


@dataclasses.dataclass(frozen=True)
class NormTiles:
    """Elements per program (rows = elements // BLOCK_C, at least 1, at most max_rows) and the backward's
    program count; tests pass small ones to cover several programs and row-block runs cheaply."""

    fwd_elems: int = 8192
    bwd_elems: int = 4096  # the backward holds x, dy, xhat, wdy and two accumulators per element
    max_rows: int = 64
    bwd_programs: int = 1056  # at most this many partial rows of dweight / dbias to sum (~8 per SM)
    finish_cols: int = 32  # columns per program of the partials' sum (64 partial rows per step)

    def block_m(self, block_c: int, elems: int) -> int:
        return max(1, min(self.max_rows, elems // block_c))


DEFAULT_TILES = NormTiles()


def _warps(block_c: int) -> int:
    return 4 if block_c <= 2048 else 8 if block_c <= 8192 else 16


def _rows_with_unit_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


@functools.lru_cache(maxsize=256)
def _bwd_plan(M: int, C: int, tiles: NormTiles) -> tuple[int, int, int, int, int]:
    """block_c, block_m, n_blocks, row blocks per program, programs of the backward (cached per shape)."""
    block_c = next_pow2(C)
    block_m = tiles.block_m(block_c, tiles.bwd_elems)
    n_blocks = cdiv(M, block_m)
    per_program = max(1, cdiv(n_blocks, tiles.bwd_programs))
    return block_c, block_m, n_blocks, per_program, cdiv(n_blocks, per_program)


def triton_layer_norm_fwd(x: torch.Tensor, weight, bias, eps: float, out_dtype: torch.dtype,
                          tiles: NormTiles | None = None):
    """x (M, C) -> y (M, C) in out_dtype and stats (2, M) float32: the rows' means, then their rstds."""
    tiles = tiles or DEFAULT_TILES  # read at call time: tests replace the module's default
    x = _rows_with_unit_stride(x)
    M, C = x.shape
    y = x.new_empty((M, C), dtype=out_dtype)
    stats = x.new_empty((2, M), dtype=torch.float32)
    if M == 0 or C == 0:
        return y, stats
    block_c = next_pow2(C)
    block_m = tiles.block_m(block_c, tiles.fwd_elems)
    _ln_fwd[(cdiv(M, block_m),)](
        x, weight if weight is not None else x, bias if bias is not None else x, y, stats,
        M, C, x.stride(0), y.stride(0), float(eps),
        HAS_W=weight is not None, HAS_B=bias is not None, BLOCK_M=block_m, BLOCK_C=block_c,
        num_warps=_warps(block_c),
    )
    return y, stats


def triton_layer_norm_bwd(dy: torch.Tensor, x: torch.Tensor, weight, bias, stats: torch.Tensor,
                          tiles: NormTiles | None = None, need_dw: bool = True, need_db: bool = True):
    """dx (M, C) in x's dtype; dweight in weight's dtype and dbias in bias's (None where absent or not
    needed: frozen parameters cost no partial sums): each its own tensor (the op's outputs may not share
    storage)."""
    tiles = tiles or DEFAULT_TILES
    x = _rows_with_unit_stride(x)
    dy = _rows_with_unit_stride(dy)
    M, C = x.shape
    dx = x.new_empty((M, C))
    dw = weight.new_empty((C,)) if weight is not None and need_dw else None
    db = bias.new_empty((C,)) if bias is not None and need_db else None
    if M == 0 or C == 0:  # nothing to sum
        return dx, (dw.zero_() if dw is not None else None), (db.zero_() if db is not None else None)
    block_c, block_m, n_blocks, per_program, n_programs = _bwd_plan(M, C, tiles)
    params = dw is not None or db is not None
    part = x.new_empty((2, n_programs, C), dtype=torch.float32) if params else dx
    _ln_bwd[(n_programs,)](
        dy, x, weight if weight is not None else x, stats, dx, part,
        M, C, x.stride(0), dy.stride(0), dx.stride(0), n_blocks, per_program, n_programs,
        HAS_W=weight is not None, NEED_DW=dw is not None, NEED_DB=db is not None, BLOCK_M=block_m,
        BLOCK_C=block_c, num_warps=_warps(block_c),
    )
    if params:
        _ln_finish[(cdiv(C, tiles.finish_cols),)](
            part, dw if dw is not None else part, db if db is not None else part, n_programs, C,
            NEED_DW=dw is not None, NEED_DB=db is not None, BLOCK_P=64, BLOCK_C=tiles.finish_cols,
        )
    return dx, dw, db
