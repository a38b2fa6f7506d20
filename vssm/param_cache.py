"""Tensors computed from parameters alone, reused between forward calls that record no gradient.

The mixers build a few tensors from their parameters on every call: A = -exp(A_log), the per-direction
weights stacked for the fused scan, the conv taps mirrored for Vim's backward direction. In training these
are graph nodes and must be rebuilt. In inference they are the same tensors call after call, and building
them is a large share of the host's work in steps bound by the host: in Vim-S's inference forward 240 of the
562 non-view ops (168 `stack`, 24 each of `exp`, `neg` and `flip`).

`derived` reuses what it built while every parameter it came from is unchanged: the same storage (the
entry holds the parameters' storages, so no other tensor can take their addresses) and the same version
counter (bumped by every in-place write: optimizer steps, `load_state_dict`, `torch.nn.init`). Replaced
parameters (`.to()`, `.cuda()`, `.half()`, assigning `.data`) have new storage. What is built under
`torch.inference_mode` (inference tensors, which autograd cannot save) is reused only there. It rebuilds
whenever autograd would record the build, and under tracing, compiling or a dispatch mode
(`vssm.kernels.eager.plain_eager`).
Entries live in a weak map keyed by the module, so they are not part of its state, copies or pickles.

Writes through ``param.data`` (``p.data.copy_(w)``, optimizers written that way) bypass the version counter.
A forward that records a gradient drops the module's entries, so training steps, whatever their optimizer,
never leave stale ones behind for the next evaluation. A write through ``.data`` between two calls without
gradients is the case left: call `clear()` after it, or set ``VSSM_PARAM_CACHE=0`` to build every call.
"""

from __future__ import annotations

import weakref
from typing import Callable, Hashable, Sequence, TypeVar

import torch
import torch.nn as nn

from vssm.kernels.eager import plain_eager
from vssm.kernels.env import switch

__all__ = ["derived", "clear", "generation", "stamp"]

T = TypeVar("T")
_ENTRIES: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


# Move at each `clear` and each build for a training step (after which any parameter may have been written
# through .data): what keeps tensors derived from parameters beyond this cache (`vssm.mamba`'s launch plans) keys
# them by `generation(module)`. One count for `clear()` of every module, one per module for the rest
_GENERATION = 0
_GENERATIONS: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


def generation(module: nn.Module) -> tuple[int, int]:
    """The counts described above, for ``module``."""
    return _GENERATION, _GENERATIONS.get(module, 0)


def _next_generation(module: nn.Module) -> None:
    _GENERATIONS[module] = _GENERATIONS.get(module, 0) + 1


def _enabled() -> bool:
    return switch("VSSM_PARAM_CACHE", "reuse", "build every call")


def stamp(params: Sequence[torch.Tensor]) -> tuple:
    """Each tensor's address and version counter (RuntimeError for inference tensors, which keep none)."""
    return tuple((p.data_ptr(), p._version) for p in params)


def derived(module: nn.Module, key: Hashable, params: Sequence[torch.Tensor], build: Callable[[], T]) -> T:
    """``build()``, or what it returned before for this module and key if no parameter in ``params`` (every
    tensor the result is computed from) has changed since and nothing would record or trace the build.
    The result must not be written in place by the caller."""
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        _next_generation(module)
        _ENTRIES.pop(module, None)  # a training step: its optimizer may write through .data (see above)
        return build()
    if not plain_eager(*params) or not _enabled():
        return build()
    try:
        now = stamp(params)
    except RuntimeError:  # inference tensors (a model made under inference mode) count no writes: build each call
        return build()
    # what inference mode builds are inference tensors, which autograd may not save: kept apart
    key = (key, torch.is_inference_mode_enabled())
    entries = _ENTRIES.get(module)
    if entries is None:
        entries = _ENTRIES[module] = {}
    hit = entries.get(key)
    if hit is not None and hit[0] == now:
        return hit[2]
    value = build()
    # the detached views keep the storages alive: a later tensor cannot reuse their addresses
    entries[key] = (now, [p.detach() for p in params], value)
    return value


def clear(module: nn.Module | None = None) -> None:
    """Drop the reused tensors of one module (every module's with None), and with them the launch plans keyed by
    its `generation` (every module's)."""
    global _GENERATION
    if module is None:
        _GENERATION += 1
        _ENTRIES.clear()
    else:
        _next_generation(module)
        _ENTRIES.pop(module, None)
