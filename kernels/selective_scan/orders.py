"""Visiting orders of a multi-direction scan: which token each scan position reads.

An order over L tokens is a permutation ``idx`` of ``range(L)``: position i of the scan reads (and
writes its output to) token ``idx[i]``. Tokens are numbered in natural (row-major) order; orders on
an H x W token grid need ``grid=(H, W)``. Each named order is one small index function below;
`register_order` adds more, and a 1-D integer tensor holding a permutation is accepted as an order
too (windowed, dilated or learned orders). `order_index` turns a list of orders into the (K, L)
int32 table the kernels read.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence, Union

import torch

__all__ = ["ORDERS", "Order", "order_index", "register_order"]

Order = Union[str, torch.Tensor]
IndexFn = Callable[[int, "tuple[int, int] | None"], torch.Tensor]


def _need_grid(name: str, L: int, grid) -> tuple[int, int]:
    if grid is None:
        raise ValueError(f"selective_scan: order {name!r} visits an H x W token grid; pass `grid=(H, W)`")
    return grid


def _natural(L, grid):
    return torch.arange(L)


def _reverse(L, grid):
    return torch.arange(L - 1, -1, -1)


def _cols(L, grid):
    H, W = _need_grid("cols", L, grid)
    # position p = j * H + i reads row i, column j
    return torch.arange(L).view(H, W).t().reshape(-1)


def _snake_rows(L, grid):
    H, W = _need_grid("snake_rows", L, grid)
    t = torch.arange(L).view(H, W).clone()
    t[1::2] = t[1::2].flip(1)
    return t.reshape(-1)


def _snake_cols(L, grid):
    H, W = _need_grid("snake_cols", L, grid)
    t = torch.arange(L).view(H, W).t().clone()
    t[1::2] = t[1::2].flip(1)
    return t.reshape(-1)


def _reversed(fn: IndexFn) -> IndexFn:
    return lambda L, grid: fn(L, grid).flip(0)


ORDERS: dict[str, IndexFn] = {
    "natural": _natural,
    "reverse": _reverse,
    "rows": _natural,  # row-major on a grid is the natural order
    "rows_reverse": _reverse,
    "cols": _cols,
    "cols_reverse": _reversed(_cols),
    "snake_rows": _snake_rows,
    "snake_rows_reverse": _reversed(_snake_rows),
    "snake_cols": _snake_cols,
    "snake_cols_reverse": _reversed(_snake_cols),
}
_GRID_ORDERS = {"cols", "cols_reverse", "snake_rows", "snake_rows_reverse", "snake_cols", "snake_cols_reverse"}


def register_order(name: str, fn: IndexFn, *, needs_grid: bool = False) -> None:
    """Add a named order: ``fn(L, grid)`` returns the permutation (a 1-D integer tensor of length L)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_order: `name` must be a non-empty string, got {name!r}")
    if name in ORDERS:
        raise ValueError(f"register_order: an order named {name!r} exists already")
    ORDERS[name] = fn
    if needs_grid:
        _GRID_ORDERS.add(name)
    _named_table.cache_clear()


def _check_grid(grid, L: int) -> tuple[int, int] | None:
    if grid is None:
        return None
    if (
        not isinstance(grid, (tuple, list))
        or len(grid) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in grid)
    ):
        raise ValueError(f"selective_scan: `grid` must be (H, W) with two positive ints, got {grid!r}")
    H, W = grid
    if H * W != L:
        raise ValueError(f"selective_scan: `grid` = ({H}, {W}) has H x W = {H * W} tokens, but L = {L}")
    return (H, W)


def _check_perm(idx: torch.Tensor, L: int, where: str) -> torch.Tensor:
    if idx.dim() != 1 or idx.numel() != L:
        raise ValueError(f"selective_scan: {where} has shape {tuple(idx.shape)}, expected a permutation of length L = {L}")
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise TypeError(f"selective_scan: {where} must be an integer tensor, got {idx.dtype}")
    if L and not torch.equal(torch.sort(idx.detach().to("cpu", torch.int64)).values, torch.arange(L)):
        raise ValueError(f"selective_scan: {where} is not a permutation of range(L) with L = {L}")
    return idx


def _build_table(names: tuple[str, ...], L: int, grid, device: torch.device) -> torch.Tensor:
    # no data-dependent check here, so torch.compile traces it (eager calls check in `_cached_table`)
    return torch.stack([ORDERS[n](L, grid) for n in names]).to(device=device, dtype=torch.int32)


def _cached_table(names: tuple[str, ...], L: int, grid, device: torch.device) -> torch.Tensor:
    # checked once per (names, L, grid): a registered order may not be a permutation. A normal tensor even
    # when first asked for under inference_mode: training steps later save the cached table for backward
    for n in names:
        _check_perm(ORDERS[n](L, grid), L, f"order {n!r}")
    with torch.inference_mode(False):
        return _build_table(names, L, grid, device)


_named_table = functools.lru_cache(maxsize=256)(_cached_table)


def order_index(
    orders: Sequence[Order], L: int, grid: tuple[int, int] | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The (K, L) int32 table of `orders` on `device`; row k holds direction k's token at each position."""
    if isinstance(orders, (str, torch.Tensor)) or not isinstance(orders, Sequence) or len(orders) == 0:
        raise ValueError(
            f"selective_scan: `orders` must be a non-empty list of order names or permutation tensors, got {orders!r}"
        )
    grid = _check_grid(grid, L)
    device = torch.device(device)
    if all(isinstance(o, str) for o in orders):
        for o in orders:
            if o not in ORDERS:
                raise ValueError(f"selective_scan: unknown order {o!r}; known orders: {sorted(ORDERS)}")
            if o in _GRID_ORDERS:
                _need_grid(o, L, grid)
        if torch.compiler.is_compiling():
            return _build_table(tuple(orders), L, grid, device)
        return _named_table(tuple(orders), L, grid, device)
    rows = []
    for k, o in enumerate(orders):
        if isinstance(o, str):
            rows.append(order_index([o], L, grid, device)[0])
        elif isinstance(o, torch.Tensor):
            rows.append(_check_perm(o, L, f"`orders[{k}]`").to(device=device, dtype=torch.int32))
        else:
            raise TypeError(f"selective_scan: `orders[{k}]` must be an order name or a tensor, got {type(o).__name__}")
    return torch.stack(rows)
