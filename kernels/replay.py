"""Launch plans: a region of Triton launches recorded once, then replayed for inputs laid out the same way.

Where the host binds (Vim-Ti at 1248, batch 8, inference: a few launches per block, GPU work short enough that the
host's Python decides the step), most of a call's host time re-derives what the previous call with the same shapes
derived: argument checks, the op's normal form, tiles, grids, strides and the launches' argument lists. A plan
keeps the outcome. `record` runs a region once as usual and notes every kernel it launches through
`launch.FastLaunch` and every tensor it allocates; `Plan.run` then makes the same allocations (the result's own,
and one buffer for the rest, in which allocations whose launches do not overlap share bytes: the buffer is about
the region's own peak) and makes the same launches, the recorded addresses replaced by the new inputs' and buffers',
each straight to its compiled kernel's launcher where one is cached (`FastLaunch.bound`), else through
`FastLaunch` with tensors rebuilt on the new storage (the interpreter, a Triton launch hook set).

A region is plannable when it runs nothing on the device but those launches and aten ops that write only into
tensors they are given (`bmm(out=)`, `baddbmm_`: replayed as they are, their tensors rebuilt on the new storage):
`record` refuses (returns no plan and says why) a region that runs another torch op than those, an allocation or a
view (an op making a new tensor, a random draw, a read of a value), that returns anything but one tensor made by
one of its allocations, or whose replay does not reproduce its result bit for bit when the new buffers start
filled with NaN bytes (a launch that was not recorded, or a kernel that reads what it did not write, shows there).
What the region reads that is neither an input nor its own allocation is a constant of the plan (parameters,
tensors derived from them): the plan keeps those tensors and their addresses, so the caller must drop the plan
when they may change (`vssm.mamba` keys its plans by the parameters' storage and version counters). The caller
also keys a plan by everything that decided the region's path: each input's shape, strides, dtype, device and
address modulo 16, and the switches read on the way (autocast, inference mode, module flags).
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import launch
from .launch import _current_stream, hooks_set, launch_direct, on_device_of

__all__ = ["Plan", "record"]

_ALLOCATIONS = frozenset(
    ("empty", "empty_strided", "new_empty", "new_empty_strided", "empty_like")
)
_ALIGN = 512  # each allocation's offset in the replay's buffer (the caching allocator's own granularity)


class _Recorder(TorchDispatchMode):
    """Sees every torch op of the region: notes each allocation (its storage's address and size, and how many
    launches preceded it; the tensor itself is not kept, so the region frees what it frees) and the first op that
    is neither an allocation nor a view. Transparent to `eager.plain_eager` (the region takes its plain eager
    path)."""

    vssm_plain_eager = True

    def __init__(self, launches: list) -> None:
        super().__init__()
        self.launches = launches
        self.allocations: list[tuple[int, int, int]] = []  # (storage address, bytes, launches before it)
        self.refused: str | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        plain = func.overloadpacket.__name__ not in _ALLOCATIONS and not func.is_view and self.refused is None
        before = _storages(args, kwargs) if plain else None
        out = func(*args, **kwargs)
        if not plain:
            if func.overloadpacket.__name__ in _ALLOCATIONS:
                st = out.untyped_storage()
                self.allocations.append((st.data_ptr(), st.nbytes(), len(self.launches)))
        elif _writes_into_arguments(func, args, kwargs) and _storages(args, kwargs) == before:
            # replayed as it is, in its place among the launches (an op that gave an argument new storage,
            # `resize_`, an `out=` grown, is refused: that storage would be shared by every replay)
            self.launches.append((None, func, args, kwargs))
        else:
            self.refused = (f"runs {func} (only allocations, views, ops writing into their tensor arguments and "
                            f"Triton launches are replayed)")
        return out


def _storages(args: tuple, kwargs: dict) -> list:
    return [(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in (*args, *kwargs.values())
            if isinstance(t, torch.Tensor)]


def _writes_into_arguments(func, args: tuple, kwargs: dict) -> bool:
    """Whether an aten op only writes into tensors it was given (`bmm.out`, `baddbmm_`, `copy_`): every result
    aliases an argument it writes, no tensor comes in a list, and it draws no random numbers. Such an op makes no
    tensor and reads no value to the host, so it replays with the new addresses' tensors in its arguments."""
    if func.namespace != "aten":  # a custom op: what it launches inside may be recorded too
        return False
    returns = func._schema.returns
    if not returns or any(r.alias_info is None or not r.alias_info.is_write for r in returns):
        return False
    if torch.Tag.nondeterministic_seeded in func.tags:
        return False
    return not any(isinstance(v, (list, tuple)) and any(isinstance(t, torch.Tensor) for t in v)
                   for v in (*args, *kwargs.values()))


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _Launch:
    """One recorded launch: the FastLaunch wrapper, grid and keywords, the positional arguments with each
    tensor described as (position, source, byte offset, size, stride, dtype) — source 0..n-1 the inputs, n the
    result's allocation, n + 1 the shared buffer — and, where the launcher may be called directly, the compiled
    kernel with the argument values (constants' addresses filled in). For a recorded aten op, ``fl`` is None and
    ``grid`` the op; a slot's position is then an index into its arguments or the name of a keyword."""

    __slots__ = ("fl", "grid", "kwargs", "args", "slots", "direct", "values")

    def __init__(self, fl, grid, args: list, kwargs: dict, slots: list, direct: tuple | None, values: list) -> None:
        self.fl, self.grid, self.args, self.kwargs, self.slots = fl, grid, args, kwargs, slots
        self.direct, self.values = direct, values


class Plan:
    """A recorded region (see the module docstring): ``run(inputs)`` returns what the region returned for inputs
    laid out as the recorded ones."""

    def __init__(self, n_inputs: int, launches: list[_Launch], nbytes: int, result: tuple, constants: list) -> None:
        self._n = n_inputs
        self._launches = launches
        self._nbytes = nbytes  # the shared buffer
        self._result = result  # (result allocation's element count, dtype, size, stride, storage offset)
        self._constants = constants  # kept alive: the launches hold their addresses

    def run(self, inputs: Sequence[torch.Tensor], poison: bool = False) -> torch.Tensor:
        dev = inputs[0].device
        numel, dtype, size, stride, offset = self._result
        store = torch.empty(numel, dtype=dtype, device=dev)
        buf = torch.empty(self._nbytes, dtype=torch.uint8, device=dev) if self._nbytes else None
        if poison:  # NaN bytes: a value the replay leaves unwritten cannot pass for the recorded one
            store.view(torch.uint8).fill_(255)
            if buf is not None:
                buf.fill_(255)
        sources = [*inputs, store, buf]
        direct = dev.type == "cuda" and not hooks_set()
        with on_device_of(inputs[0]):
            if direct:
                bases = [t.data_ptr() if t is not None else 0 for t in sources]
                stream = _current_stream(dev.index if dev.index is not None else torch.cuda.current_device())
            for ln in self._launches:
                if ln.fl is not None and direct and ln.direct is not None:
                    values = list(ln.values)
                    for pos, src, off, *_ in ln.slots:
                        values[pos] = bases[src] + off
                    compiled, grid3, tail = ln.direct
                    launch_direct(compiled, grid3, stream, values, tail)
                    continue
                args, kwargs = _rebuilt(ln, sources)
                if ln.fl is None:  # an aten op
                    ln.grid(*args, **kwargs)
                else:
                    ln.fl._launch(ln.grid, tuple(args), kwargs)
        return store.as_strided(size, stride, offset)


def _rebuilt(ln: _Launch, sources: list) -> tuple[list, dict]:
    """A recorded launch's or op's arguments and keywords with its tensors rebuilt on this run's storage."""
    args, kwargs = list(ln.args), ln.kwargs
    for pos, src, off, t_size, t_stride, t_dtype in ln.slots:
        t = _view(sources[src], off, t_size, t_stride, t_dtype)
        if isinstance(pos, str):
            kwargs = dict(kwargs) if kwargs is ln.kwargs else kwargs
            kwargs[pos] = t
        else:
            args[pos] = t
    return args, kwargs


def _view(src: torch.Tensor, off: int, size, stride, dtype) -> torch.Tensor:
    """The tensor (size, stride, dtype) at byte offset ``off`` from src's first element (another dtype: on src's
    storage, whatever src's strides)."""
    if src.dtype == dtype:
        return src.as_strided(size, stride, src.storage_offset() + off // src.element_size())
    at = src.storage_offset() * src.element_size() + off
    t = torch.empty(0, dtype=dtype, device=src.device)
    return t.set_(src.untyped_storage(), at // t.element_size(), size, stride)


def record(region: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, Plan | None, str]:
    """Run ``region(*inputs)`` and record it: (its result, the plan or None, why there is none). A refused region
    has run as usual and its result is returned; for a planned one, the checking replay's result, equal to the
    region's bit for bit."""
    launches: list = []
    recorder = _Recorder(launches)
    me = threading.get_ident()
    if me in launch._RECORDING:
        raise RuntimeError("replay.record: already recording in this thread (regions do not nest)")
    launch._RECORDING[me] = launches
    try:
        with recorder:
            result = region(*inputs)
    finally:
        del launch._RECORDING[me]
    with on_device_of(inputs[0]):  # the kernels bound as launched: on the inputs' device
        plan, why = _plan(recorder, launches, list(inputs), result)
    launches.clear()  # the region's intermediates, held by the launches' arguments, go now
    if plan is None:
        return result, None, why
    # the check: the replay, its buffers filled with NaN bytes, must give the region's result bit for bit. On
    # CUDA the region's result waits on the host meanwhile, so the device's peak stays the region's own (the
    # replay's result is returned in its place; the region's comes back where the check fails)
    device = result.device
    held = result.cpu() if device.type == "cuda" else result
    layout = (result.shape, result.stride())
    del result
    try:
        again = plan.run(inputs, poison=True)
    except Exception as e:  # noqa: BLE001 - any failure leaves the region unplanned
        return _back(held, device, layout), None, f"its replay failed ({type(e).__name__}: {e})"
    if (again.shape, again.stride()) != layout or not _same_bits(again.to(held.device), held):
        return _back(held, device, layout), None, "its replay did not reproduce the result"
    return again, plan, ""


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal as bits (a NaN the region computed matches; -0.0 does not match 0.0)."""
    bits = _BITS.get(a.element_size())
    if bits is None or a.dtype != b.dtype or a.is_complex():
        return a.dtype == b.dtype and torch.equal(a, b)
    return torch.equal(a.view(bits), b.view(bits))


_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _back(held: torch.Tensor, device: torch.device, layout: tuple) -> torch.Tensor:
    """The region's result, held on the host during the check, on its device again, in its layout."""
    if held.device == device:
        return held
    out = torch.empty_strided(layout[0], layout[1], dtype=held.dtype, device=device)
    return out.copy_(held)


def _pack(sizes: dict, spans: dict) -> tuple[dict, int]:
    """Offsets in one buffer for allocations live over launch spans [first, last]: those whose spans overlap
    apart, the others sharing bytes (largest first, each at the lowest aligned offset free over its span), so the
    buffer is about the region's own peak, not the sum of its allocations. -> (offsets, total bytes)."""
    offsets, total = {}, 0
    for j in sorted(sizes, key=lambda j: (-sizes[j], j)):
        first, last = spans[j]
        taken = sorted((offsets[i], offsets[i] + sizes[i]) for i in offsets
                       if spans[i][0] <= last and first <= spans[i][1])
        at = 0
        for lo, hi in taken:
            if at + sizes[j] <= lo:
                break
            at = max(at, -(-hi // _ALIGN) * _ALIGN)
        offsets[j] = at
        total = max(total, at + sizes[j])
    return offsets, -(-total // _ALIGN) * _ALIGN  # whole units: the buffer is viewed as any dtype


def _plan(recorder: _Recorder, launches: list, inputs: list, result) -> tuple[Plan | None, str]:
    if recorder.refused is not None:
        return None, recorder.refused
    if not isinstance(result, torch.Tensor):
        return None, f"returns {type(result).__name__}, not a tensor"
    if not launches:
        return None, "launches nothing"
    allocs = recorder.allocations
    if any(t.untyped_storage().nbytes() == 0 for t in inputs) or any(nb == 0 for _, nb, _ in allocs):
        return None, "allocates or reads an empty tensor"
    in_storage = {}
    for i, t in enumerate(inputs):
        in_storage.setdefault(_storage(t), i)
    if any(ptr in in_storage for ptr, _, _ in allocs):
        return None, "an allocation shares storage with an input"

    def allocation_of(ptr: int, before: int) -> int | None:
        """The allocation at storage address ``ptr`` live at launch ``before`` (the latest made before it: the
        region may free one and get its address again)."""
        for j in range(len(allocs) - 1, -1, -1):
            if allocs[j][0] == ptr and allocs[j][2] <= before:
                return j
        return None

    out_j = allocation_of(_storage(result), len(launches))
    if out_j is None:
        return None, "its result is not one of its allocations"
    # which allocation each launch's tensors live in, and each allocation's span of launches
    where, spans = [], {}
    for i, (fl, _, args, kwargs) in enumerate(launches):
        if fl is not None and any(isinstance(v, torch.Tensor) for v in kwargs.values()):
            return None, "passes a tensor by keyword to a kernel"
        if any(hasattr(a, "data_ptr") and not isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
            return None, "passes an address that is not a tensor (a pointer wrapper)"
        found = []
        named = () if fl is not None else kwargs.items()
        for pos, a in (*enumerate(args), *named):
            if isinstance(a, torch.Tensor):
                ptr = _storage(a)
                j = None if ptr in in_storage else allocation_of(ptr, i)
                found.append((pos, a, ptr, j))
                if j is not None and j != out_j:
                    spans[j] = (spans.get(j, (i, i))[0], i)
        where.append(found)
    offsets, nbytes = _pack({j: allocs[j][1] for j in spans}, spans)
    n = len(inputs)
    constants, planned = [], []
    for (fl, grid, args, kwargs), found in zip(launches, where):
        values, slots = list(args), []
        if fl is None:  # an aten op: its tensors rebuilt per run, the rest as recorded
            kwargs = dict(kwargs)
        for pos, a, ptr, j in found:
            if ptr in in_storage:
                i = in_storage[ptr]
                slot, off = i, a.data_ptr() - inputs[i].data_ptr()
            elif j is None:  # a constant of the plan (parameters, what is derived from them)
                constants.append(a)
                continue
            elif j == out_j:
                slot, off = n, a.data_ptr() - ptr
            else:
                slot, off = n + 1, offsets[j] + a.data_ptr() - ptr
            slots.append((pos, slot, off, tuple(a.shape), a.stride(), a.dtype))
            if isinstance(pos, str):
                kwargs[pos] = None
            else:
                values[pos] = None
        if fl is None:
            planned.append(_Launch(None, grid, values, kwargs, slots, None, None))
            continue
        direct = fl.bound(grid, tuple(args), kwargs)
        # the launcher's values: constants as addresses on CUDA (the slots filled per run)
        full = launch._split(tuple(values))[1] if direct is not None else None
        planned.append(_Launch(fl, grid, values, kwargs, slots, direct, full))
    itemsize = result.element_size()
    if allocs[out_j][1] % itemsize:
        return None, "its result's storage is not a whole number of its elements"
    result_desc = (allocs[out_j][1] // itemsize, result.dtype, tuple(result.shape), result.stride(),
                   result.storage_offset())
    return Plan(n, planned, nbytes, result_desc, constants), ""
