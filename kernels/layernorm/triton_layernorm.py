"""Triton kernels of the LayerNorm op (see `op.py` for the definition).

x is (M, C) with unit stride along C, rows read through their stride (a view of a wider tensor needs
no copy); a tile is BLOCK_M rows x BLOCK_C (the power of two >= C) columns, so a whole row sits in one
program and its sums are in-register reductions.

Forward: one program per BLOCK_M rows; two passes over the registers (the mean, then the variance of
x - mean: no cancellation for rows far from zero), y in the output dtype, mean and rstd (float32, one
(2, M) tensor: one allocation) kept for the backward.
Backward: each program walks a run of consecutive row blocks; dx row by row from the two row sums of
the module formula; the parameters' gradients are summed elementwise over the program's rows and
reduced once at the end into one float32 row per program. In the same launch, the last program to
finish (an atomic arrival counter, see `_workspace`) sums those rows over the programs into dweight
and dbias, always in the same order whichever program it is: the result is the same bit for bit from
run to run. The atomic only counts; no value is summed through atomics. The one launch saves the host
time of a second one (a separate sum kernel before); as one program reads every partial row, their
number is capped (`NormTiles`).

Tile sizes and the program cap are not measured on a GPU yet (tools/bench_norm.py times them).
"""

from __future__ import annotations

import dataclasses
import functools

import torch
import triton
import triton.language as tl

from ..intmath import cdiv, next_pow2
from ..launch import _current_stream, fast_launch, on_device_of


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _ln_fwd(
    x, w, b, y, stats,
    M, C, sxm, sym, eps,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
    RMS: tl.constexpr = False, STATS: tl.constexpr = True,
):
    """RMS: y = x rstd weight with rstd = 1 / sqrt(mean(x^2) + eps) (RMSNorm: no mean subtracted, stored mean 0)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < M
    cmask = cols < C
    m = rmask[:, None] & cmask[None, :]
    r64 = rows.to(tl.int64)
    xv = tl.load(x + r64[:, None] * sxm + cols[None, :], mask=m, other=0.0).to(tl.float32)
    if RMS:
        mu = tl.zeros((BLOCK_M,), dtype=tl.float32)
        d = xv  # masked entries loaded as 0
    else:
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
    if STATS:
        tl.store(stats + rows, mu, mask=rmask)  # row 0 of stats: the means, row 1 (M further): the rstds
        tl.store(stats + M + rows, rs, mask=rmask)


@triton.jit
def _sum_partials(
    part, dw, db, P, C,
    NEED_DW: tl.constexpr, NEED_DB: tl.constexpr, FIN_P: tl.constexpr, FIN_C: tl.constexpr,
):
    """dweight / dbias: the (2, P, C) float32 partials summed over P, always in the same order (FIN_C
    columns at a time, FIN_P partial rows per step), written in the parameters' dtypes."""
    for c0 in range(0, C, FIN_C):
        cols = c0 + tl.arange(0, FIN_C)
        cmask = cols < C
        acc_w = tl.zeros((FIN_P, FIN_C), dtype=tl.float32)
        acc_b = tl.zeros((FIN_P, FIN_C), dtype=tl.float32)
        for p0 in range(0, P, FIN_P):
            p = p0 + tl.arange(0, FIN_P)
            m = (p < P)[:, None] & cmask[None, :]
            offs = p[:, None] * C + cols[None, :]
            # .cg: read from L2, never from a line of this SM's L1 (the partials were written by other SMs)
            if NEED_DW:
                acc_w += tl.load(part + offs, mask=m, other=0.0, cache_modifier=".cg")
            if NEED_DB:
                acc_b += tl.load(part + P * C + offs, mask=m, other=0.0, cache_modifier=".cg")
        if NEED_DW:
            tl.store(dw + cols, tl.sum(acc_w, axis=0).to(dw.dtype.element_ty), mask=cmask)
        if NEED_DB:
            tl.store(db + cols, tl.sum(acc_b, axis=0).to(db.dtype.element_ty), mask=cmask)


@fast_launch  # launched from the host: Triton's argument binding once per specialization
@triton.jit
def _ln_bwd(
    dy, x, w, stats, dx, part, dw, db, counter,
    M, C, sxm, sdym, sdxm, n_blocks, n_programs,
    HAS_W: tl.constexpr, NEED_DW: tl.constexpr, NEED_DB: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr, FIN_P: tl.constexpr, FIN_C: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < C
    if HAS_W:
        wv = tl.load(w + cols, mask=cmask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    db_acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    # the row blocks split into n_programs runs of consecutive blocks, the first n_blocks % n_programs runs
    # one block longer
    per = n_blocks // n_programs
    longer = n_blocks % n_programs
    first = pid * per + tl.minimum(pid, longer)
    for blk in range(first, first + per + (pid < longer).to(tl.int32)):
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
    if NEED_DW or NEED_DB:
        # part is (2, n_programs, C): dweight partials in its first half, dbias partials in its second
        if NEED_DW:
            tl.store(part + pid * C + cols, tl.sum(dw_acc, axis=0), mask=cmask)
        if NEED_DB:
            tl.store(part + (n_programs + pid) * C + cols, tl.sum(db_acc, axis=0), mask=cmask)
        # The last program to arrive sums every program's partials. The barrier orders the stores of all of
        # this program's threads before the counter's increment, which one thread makes; its release (at GPU
        # scope) publishes them, and the acquire of the program that sees n_programs - 1 earlier arrivals
        # makes every program's partials visible to it (its threads read them after the barrier through
        # which Triton hands the scalar result to all of them).
        tl.debug_barrier()
        arrived = tl.atomic_add(counter, 1, sem="acq_rel", scope="gpu")
        if arrived == n_programs - 1:
            _sum_partials(part, dw, db, n_programs, C, NEED_DW, NEED_DB, FIN_P, FIN_C)
            tl.store(counter, 0)  # every program has arrived: zero for the next launch on this stream


@dataclasses.dataclass(frozen=True)
class NormTiles:
    """Elements per program (rows = elements // BLOCK_C, at least 1, at most max_rows), the backward's
    program count and the tiles of its last program's sum; tests pass small ones to cover several programs,
    row-block runs and several steps of the sum cheaply.

    The backward runs min(row blocks, cap) programs, each a run of consecutive row blocks. cap is
    bwd_programs; where dweight or dbias is needed, one program reads all the (2, programs, C) float32
    partials at the end, so cap is also at most partial_bytes / (8 C), but not below min_programs (one
    per SM of an H200: dx needs the whole GPU), which wins for wide rows (C >= 993 at the defaults)."""

    fwd_elems: int = 8192
    bwd_elems: int = 4096  # the backward holds x, dy, xhat, wdy and two accumulators per element
    max_rows: int = 64
    bwd_programs: int = 1056  # ~8 per SM of an H200
    finish_cols: int = 128  # columns per step of the last program's sum (a power of two; fewer for small C)
    finish_elems: int = 4096  # partials per step of it and parameter (a power of two): elems // columns rows
    partial_bytes: int = 1 << 20  # 1 MiB of partials: ~811 KB at C = 96 (1056 programs), ~1 MB at C = 768 (170)
    min_programs: int = 132

    def block_m(self, block_c: int, elems: int) -> int:
        return max(1, min(self.max_rows, elems // block_c))


DEFAULT_TILES = NormTiles()


def _warps(block_c: int) -> int:
    return 4 if block_c <= 2048 else 8 if block_c <= 8192 else 16


def _rows_with_unit_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


@functools.lru_cache(maxsize=256)
def _bwd_plan(M: int, C: int, tiles: NormTiles, params: bool) -> tuple[int, ...]:
    """block_c, block_m, row blocks, programs, the last program's sum's partial rows and columns per step,
    warps: the backward's launch for (M, C), with dweight / dbias or without (`params`); cached per shape."""
    block_c = next_pow2(C)
    block_m = tiles.block_m(block_c, tiles.bwd_elems)
    n_blocks = cdiv(M, block_m)
    cap = tiles.bwd_programs
    if params:  # the partials (2 * programs * C float32) within partial_bytes, but min_programs at the least
        cap = min(cap, max(tiles.min_programs, tiles.partial_bytes // (8 * C)))
    fin_c = min(block_c, tiles.finish_cols)
    fin_p = max(1, tiles.finish_elems // fin_c)
    return block_c, block_m, n_blocks, max(1, min(cap, n_blocks)), fin_p, fin_c, _warps(block_c)


# The backward's workspace per stream: the arrival counter (int32, zero between launches) and the float32
# partials, kept from call to call (no allocation or memset launch per call). Launches on one stream run
# in order and the last program of each zeroes the counter again, so the next launch on that stream
# finds it zero; launches on two streams may overlap, so each stream has its own. Keys: (x's device
# index, the current device, the launch stream), or (-1, -1, 0) for CPU tensors under TRITON_INTERPRET=1
# (the interpreter runs the programs, and the launches, one after the other; its atomics act on the
# tensor in place). Values: [counter, partials]; the partials grow to the largest call's on that stream
# (freed and allocated on that stream: the caching allocator keeps the order).
_WORKSPACES: dict = {}
_MAX_WORKSPACES = 64  # more streams than this (ExternalStream wrappers without end): start over. Freeing one
# in use is safe: its memory returns to its stream's pool, ordered after the launches that use it there


def _workspace(x: torch.Tensor, n_part: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A zeroed int32 counter and a float32 buffer of at least n_part elements for the backward's launch.

    While the current stream captures a CUDA graph, both are new, allocated in the graph's pool (the
    counter zeroed by a fill kernel captured with it): a graph replays on whatever stream it is launched
    on, possibly beside eager calls on the capture stream, so it must not share their counter. The kernel
    still zeroes its counter at the end, which keeps a replay equal to the first run."""
    if x.is_cuda:
        if torch.cuda.is_current_stream_capturing():
            return x.new_zeros((1,), dtype=torch.int32), x.new_empty((n_part,), dtype=torch.float32)
        device = torch.cuda.current_device()
        key = (x.get_device(), device, _current_stream(device))  # the stream fast_launch and Triton launch on
    else:
        key = (-1, -1, 0)
    ws = _WORKSPACES.get(key)
    if ws is None:
        if len(_WORKSPACES) >= _MAX_WORKSPACES:
            _WORKSPACES.clear()
        ws = [x.new_zeros((1,), dtype=torch.int32), x.new_empty((n_part,), dtype=torch.float32)]
        _WORKSPACES[key] = ws
    elif ws[1].numel() < n_part:
        ws[1] = x.new_empty((n_part,), dtype=torch.float32)
    return ws[0], ws[1]


def triton_layer_norm_fwd(x: torch.Tensor, weight, bias, eps: float, out_dtype: torch.dtype,
                          tiles: NormTiles | None = None, rms: bool = False, keep_stats: bool = True):
    """x (M, C) -> y (M, C) in out_dtype and stats (2, M) float32: the rows' means, then their rstds (None without
    ``keep_stats``: for no backward). ``rms``: RMSNorm (x rstd weight + bias, rstd from the mean square; the stored
    means are 0)."""
    tiles = tiles or DEFAULT_TILES  # read at call time: tests replace the module's default
    x = _rows_with_unit_stride(x)
    M, C = x.shape
    y = x.new_empty((M, C), dtype=out_dtype)
    stats = x.new_empty((2, M), dtype=torch.float32) if keep_stats else None
    if M == 0 or C == 0:
        return y, stats
    block_c = next_pow2(C)
    block_m = tiles.block_m(block_c, tiles.fwd_elems)
    with on_device_of(x):  # Triton launches on the current device
        _ln_fwd[(cdiv(M, block_m),)](
            x, weight if weight is not None else x, bias if bias is not None else x, y, stats if keep_stats else y,
            M, C, x.stride(0), y.stride(0), float(eps),
            HAS_W=weight is not None, HAS_B=bias is not None, BLOCK_M=block_m, BLOCK_C=block_c, RMS=rms,
            STATS=keep_stats,
            num_warps=_warps(block_c),
        )
    return y, stats


def triton_layer_norm_bwd(dy: torch.Tensor, x: torch.Tensor, weight, bias, stats: torch.Tensor,
                          tiles: NormTiles | None = None, need_dw: bool = True, need_db: bool = True):
    """dx (M, C) in x's dtype; dweight in weight's dtype and dbias in bias's (None where absent or not
    needed: frozen parameters cost no partial sums): each its own tensor (the op's outputs may not share
    storage). One launch: dweight / dbias are summed by its last program (see `_ln_bwd`)."""
    tiles = tiles or DEFAULT_TILES
    x = _rows_with_unit_stride(x)
    dy = _rows_with_unit_stride(dy)
    M, C = x.shape
    dx = x.new_empty((M, C))
    dw = weight.new_empty((C,)) if weight is not None and need_dw else None
    db = bias.new_empty((C,)) if bias is not None and need_db else None
    if M == 0 or C == 0:  # nothing to sum
        return dx, (dw.zero_() if dw is not None else None), (db.zero_() if db is not None else None)
    params = dw is not None or db is not None
    block_c, block_m, n_blocks, n_programs, fin_p, fin_c, warps = _bwd_plan(M, C, tiles, params)
    with on_device_of(x):  # Triton launches on the current device
        if params:
            counter, part = _workspace(x, 2 * n_programs * C)
        else:
            counter = part = dx  # not read
        _ln_bwd[(n_programs,)](
            dy, x, weight if weight is not None else x, stats, dx, part,
            dw if dw is not None else part, db if db is not None else part, counter,
            M, C, x.stride(0), dy.stride(0), dx.stride(0), n_blocks, n_programs,
            HAS_W=weight is not None, NEED_DW=dw is not None, NEED_DB=db is not None, BLOCK_M=block_m,
            BLOCK_C=block_c, FIN_P=fin_p, FIN_C=fin_c, num_warps=warps,
        )
    return dx, dw, db
