"""Triton kernels of the LayerNorm op (see `op.py` for the definition).

x is (M, C) with unit stride along C, rows read through their stride (a view of a wider tensor needs
no copy); a tile is BLOCK_M rows x BLOCK_C (the power of two >= C) columns, so a whole row sits in one
program and its sums are in-register reductions.

Forward: one program per BLOCK_M rows; two passes over the registers (the mean, then the variance of
x - mean: no cancellation for rows far from zero), y in the output dtype, mean and rstd (float32) kept
for the backward.
Backward: each program walks a run of consecutive row blocks; dx row by row from the two row sums of
the module formula; the parameters' gradients are summed elementwise over the program's rows and
reduced once at the end into one float32 row per program, then summed over programs on the host in
a fixed order (deterministic, no atomics).

Tile sizes are not measured on a GPU yet (tools/bench_norm.py times them).
"""

from __future__ import annotations

import dataclasses

import torch
import triton
import triton.language as tl

from ..intmath import cdiv, next_pow2
from ..launch import fast_launch


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _ln_fwd(
    x, w, b, y, mean, rstd,
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
    tl.store(mean + rows, mu, mask=rmask)
    tl.store(rstd + rows, rs, mask=rmask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _ln_bwd(
    dy, x, w, mean, rstd, dx, dw_part, db_part,
    M, C, sxm, sdym, sdxm, n_blocks, blocks_per_program,
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
        mu = tl.load(mean + rows, mask=rmask, other=0.0)
        rs = tl.load(rstd + rows, mask=rmask, other=0.0)
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
    if NEED_DW:
        tl.store(dw_part + pid * C + cols, tl.sum(dw_acc, axis=0), mask=cmask)
    if NEED_DB:
        tl.store(db_part + pid * C + cols, tl.sum(db_acc, axis=0), mask=cmask)


@dataclasses.dataclass(frozen=True)
class NormTiles:
    """Elements per program (rows = elements // BLOCK_C, at least 1, at most max_rows) and the backward's
    program count; tests pass small ones to cover several programs and row-block runs cheaply."""

    fwd_elems: int = 8192
    bwd_elems: int = 4096  # the backward holds x, dy, xhat, wdy and two accumulators per element
    max_rows: int = 64
    bwd_programs: int = 1056  # at most this many partial rows of dweight / dbias to sum (~8 per SM)

    def block_m(self, block_c: int, elems: int) -> int:
        return max(1, min(self.max_rows, elems // block_c))


DEFAULT_TILES = NormTiles()


def _warps(block_c: int) -> int:
    return 4 if block_c <= 2048 else 8 if block_c <= 8192 else 16


def _rows_with_unit_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def triton_layer_norm_fwd(x: torch.Tensor, weight, bias, eps: float, out_dtype: torch.dtype,
                          tiles: NormTiles | None = None):
    """x (M, C) -> y (M, C) in out_dtype, mean and rstd (M,) float32."""
    tiles = tiles or DEFAULT_TILES  # read at call time: tests replace the module's default
    x = _rows_with_unit_stride(x)
    M, C = x.shape
    y = x.new_empty((M, C), dtype=out_dtype)
    mean = x.new_empty((M,), dtype=torch.float32)
    rstd = x.new_empty((M,), dtype=torch.float32)
    if M == 0 or C == 0:
        return y, mean, rstd
    block_c = next_pow2(C)
    block_m = tiles.block_m(block_c, tiles.fwd_elems)
    _ln_fwd[(cdiv(M, block_m),)](
        x, weight if weight is not None else x, bias if bias is not None else x, y, mean, rstd,
        M, C, x.stride(0), y.stride(0), float(eps),
        HAS_W=weight is not None, HAS_B=bias is not None, BLOCK_M=block_m, BLOCK_C=block_c,
        num_warps=_warps(block_c),
    )
    return y, mean, rstd


def triton_layer_norm_bwd(dy: torch.Tensor, x: torch.Tensor, weight, mean: torch.Tensor, rstd: torch.Tensor,
                          need_dw: bool, need_db: bool, tiles: NormTiles | None = None):
    """dx (M, C) in x's dtype; dweight and dbias (C,) float32 sums (None where not asked for)."""
    tiles = tiles or DEFAULT_TILES
    x = _rows_with_unit_stride(x)
    dy = _rows_with_unit_stride(dy)
    M, C = x.shape
    dx = x.new_empty((M, C))
    need_dw = need_dw and weight is not None
    block_c = next_pow2(C)
    block_m = tiles.block_m(block_c, tiles.bwd_elems)
    n_blocks = cdiv(M, block_m)
    per_program = max(1, cdiv(n_blocks, tiles.bwd_programs))
    n_programs = cdiv(n_blocks, per_program)
    dw_part = x.new_empty((n_programs, C), dtype=torch.float32) if need_dw else None
    db_part = x.new_empty((n_programs, C), dtype=torch.float32) if need_db else None
    if M and C:
        _ln_bwd[(n_programs,)](
            dy, x, weight if weight is not None else x, mean, rstd, dx,
            dw_part if dw_part is not None else dx, db_part if db_part is not None else dx,
            M, C, x.stride(0), dy.stride(0), dx.stride(0), n_blocks, per_program,
            HAS_W=weight is not None, NEED_DW=need_dw, NEED_DB=need_db, BLOCK_M=block_m, BLOCK_C=block_c,
            num_warps=_warps(block_c),
        )
    else:  # C = 0 rows, or no rows: nothing to sum
        dw_part = dw_part.zero_() if dw_part is not None else None
        db_part = db_part.zero_() if db_part is not None else None
    dw = torch.sum(dw_part, dim=0) if dw_part is not None else None
    db = torch.sum(db_part, dim=0) if db_part is not None else None
    return dx, dw, db
