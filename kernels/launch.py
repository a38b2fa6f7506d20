"""Kernel launches with less host time: Triton's argument binding done once per specialization.

`kernel[grid](*args, **constexprs)` on a `triton.jit` function binds and specializes every argument on
every call: on one H200 machine's host an empty kernel launched in 17 us with 5 arguments and 43 us with
40, and the scan's kernels (45-62 arguments) in 81-131 us. A scan call launches three or four of them,
and in launch-bound models (MambaVision-T training, small batches) host time is step time.

`fast_launch(kernel)` keeps Triton's path for the first launch of each specialization (compiling or
taking Triton's own cache) and remembers the compiled kernel under a key finer than Triton's own: each
int by value, each tensor's dtype, address mod 16 and device type, the type of every other argument,
the keyword arguments with their types (constexprs and launch options), the current device and Triton's
debug settings.
Later launches with the same key go straight to the compiled kernel's launcher, with CUDA tensors passed
as their addresses (Triton's launcher otherwise asks the driver about each tensor argument on every
launch). Triton's path is kept whenever it must run: under the interpreter (``TRITON_INTERPRET=1``), when
a launch hook or a pre-run hook is set (profilers), for constexprs passed by position, for tensors not on
CUDA (Triton's error), for arguments of other types (tuples, descriptors), callable grids and keyword
values that are not scalars, and when ``VSSM_FAST_LAUNCH=0``. Not repeated on the cached path: Triton's check
that the global values a kernel reads have not changed since it was compiled (the wrapped kernels read
constants).

Measured (H200 machines, Triton 3.6; `docs/bench/h200-2026-11-29-s16`): results bit for bit those of
Triton's path (tests/gpu/test_fast_launch_gpu.py); one launch of the scan's forward kernel (62 arguments,
13 tensors), repeated alone: 21-25 us against 34-42 us through Triton's path, of which the compiled
launcher with addresses as ints is 7-10 us and building the key 6-9 us. Inside the op's sequence of torch
calls the same launches took ~90 us each (why was not measured; cold CPU caches are one candidate).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import warnings
from typing import Any

import torch

from .env import switch

__all__ = ["fast_launch", "FastLaunch", "hooks_set", "launch_direct", "on_device_of"]

_TENSORS = (torch.Tensor, torch.nn.Parameter)
_MAX_ENTRIES = 1024  # cached launches per kernel


def _enabled() -> bool:
    return switch("VSSM_FAST_LAUNCH", "the cached launch", "Triton's launch path")


def _hook_set(hook) -> bool:
    """Whether a Triton launch hook is installed: None, or (Triton >= 3.5) an empty `HookChain`, is none."""
    if hook is None:
        return False
    calls = getattr(hook, "calls", None)
    return bool(calls) if calls is not None else True


def arg_key(args: tuple) -> tuple:
    """The cache key of a launch's positional arguments: finer than what Triton specializes on, so one entry
    never stands for two specializations (ints by value, tensors by dtype, address mod 16 and device type)."""
    return _split(args)[0]


def _split(args: tuple) -> tuple[tuple, list]:
    """The launch's key (see `arg_key`) and the values handed to the compiled kernel's launcher.

    Ints enter the key as they are (classifying each one as Triton does cost more host time than the
    rest of the launch; a new shape is a new entry, made once through Triton's path). A CUDA tensor goes
    to the launcher as its address (an int), which it takes as it is, where for a tensor object it calls
    ``data_ptr()`` and asks the driver whether the address is a device pointer (one driver call per
    pointer argument on every launch). Any other tensor keeps Triton's own path and its error. The key is
    None for an argument of any other type (tuples, tensor descriptors): those launches keep Triton's path."""
    # the ints (most of a launch's arguments) stay in place in both lists; only the other positions are rewritten
    # (a key built element by element took twice the host time)
    key, vals = list(args), list(args)
    for i, a in enumerate(args):
        t = type(a)
        if t is int or a is None:
            continue
        if t in _TENSORS:
            ptr = a.data_ptr()
            if a.is_cuda:
                key[i] = (a.dtype, ptr & 15)
                vals[i] = ptr
            else:
                key[i] = (a.dtype, ptr & 15, a.device.type)
        elif t is bool:  # True == 1 as a key: kept apart from the ints
            key[i] = (bool, a)
        elif t is float:  # Triton passes every float as fp32
            key[i] = float
        elif hasattr(a, "data_ptr"):  # tensor subclasses, triton.reinterpret's wrappers: pointers as well
            key[i] = (t, a.dtype, a.data_ptr() & 15)
        else:  # tuples, descriptors, ...: Triton specializes on their contents; its own path decides
            return None, vals
    return tuple(key), vals


_KEYWORD_TYPES = (int, bool, float, str, type(None))


def _keywords_key(kwargs: dict) -> tuple | None:
    """The keyword arguments (constexprs, launch options) as a key, each value with its type (True, 1 and 1.0
    are equal as Python values, not as constexprs); None where a value is of another type (a tensor by
    keyword would be held by the cache): such launches keep Triton's path."""
    key = []
    for name, value in kwargs.items():
        t = type(value)
        if t not in _KEYWORD_TYPES:
            return None
        key.append((name, t, value))
    return tuple(key)


class FastLaunch:
    """A launchable wrapper of one `triton.jit` kernel (see the module docstring); other attributes are the
    kernel's."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        from triton.runtime.jit import JITFunction

        knobs = self._knobs = _triton_knobs()
        # False under TRITON_INTERPRET=1 (an InterpretedFunction) and on Triton without knobs
        self._jit = isinstance(kernel, JITFunction) and knobs is not None
        if self._jit:
            try:
                self._params = [(p.name, p.default) for p in kernel.params]
                # constexprs passed by position would be keyed by value class only: those launches keep
                # Triton's path
                self._positional = next((i for i, p in enumerate(kernel.params) if p.is_constexpr),
                                        len(kernel.params))
            except AttributeError:  # a Triton whose parameters describe themselves differently
                self._jit = False
        self._compiled: dict = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kernel, name)

    def __getitem__(self, grid: tuple):
        def launch(*args, **kwargs):
            return self._launch(grid, args, kwargs)

        return launch

    def _launch(self, grid: tuple, args: tuple, kwargs: dict):
        if _RECORDING:  # a launch plan is being recorded (`replay.record`), in this thread: noted, and run unseen
            # by the recorder (the interpreter's own copies are not the region's ops)
            launches = _RECORDING.get(threading.get_ident())
            if launches is None:
                return self._run(grid, args, kwargs)
            launches.append((self, grid, args, kwargs))
            from torch.utils._python_dispatch import _disable_current_modes

            with _disable_current_modes():
                return self._run(grid, args, kwargs)
        return self._run(grid, args, kwargs)

    def _run(self, grid: tuple, args: tuple, kwargs: dict):
        if not self._fast_path(grid, args):
            return self.kernel[grid](*args, **kwargs)
        key, full = self._key(args, kwargs)
        if key is None:
            return self.kernel[grid](*args, **kwargs)
        entry = self._compiled.get(key)
        if entry is None:
            compiled = self.kernel[grid](*args, **kwargs)
            if len(self._compiled) >= _MAX_ENTRIES:  # shapes without end (varying resolution): start over
                self._compiled.clear()
            # every parameter after the positional ones, keywords or defaults (constexprs included, as
            # Triton's own launch passes them; the launcher skips them by the compiled signature)
            tail = [kwargs.get(name, default) for name, default in self._params[len(args):]]
            self._compiled[key] = (compiled, tail, _direct(compiled))  # launched once: its launcher is loaded
            return compiled
        compiled, tail, direct = entry
        try:
            grid3 = tuple(grid) + (1,) * (3 - len(grid))
            if direct:
                # the launcher itself, as the compiled kernel's runner calls it, without the runner's lookups:
                # no hooks are set (checked above), so no launch metadata is made for them
                launch_direct(compiled, grid3, _current_stream(key[0]), full, tail)
            else:
                compiled[grid3](*full, *tail)
        except (TypeError, ValueError, AttributeError) as e:
            # a Triton whose compiled kernels take their arguments differently (refused while the arguments
            # are read, before anything is launched): Triton's own path for this kernel from now on
            self._jit = False
            warnings.warn(f"vssm fast_launch: {type(e).__name__}: {e}; using Triton's launch path", stacklevel=3)
            return self.kernel[grid](*args, **kwargs)
        return compiled

    def _fast_path(self, grid, args: tuple) -> bool:
        """Whether this launch may take the cached path (see the module docstring): a compiled kernel, positional
        arguments before the first constexpr, a grid that is not callable, the switch on, no hooks set."""
        if (not self._jit or len(args) > self._positional or callable(grid) or not _enabled()
                or getattr(self.kernel, "pre_run_hooks", None)):
            return False
        return not hooks_set()

    def _key(self, args: tuple, kwargs: dict) -> tuple[tuple | None, list]:
        """The cache key of a launch (None: Triton's path) and the values its launcher takes. Keywords in the
        caller's order: a call site that orders them differently only adds an entry; the debug and
        instrumentation settings are part of Triton's key too."""
        akey, full = _split(args)
        kkey = _keywords_key(kwargs)
        if akey is None or kkey is None:
            return None, full
        knobs = self._knobs
        return (torch.cuda.current_device(), akey, kkey, getattr(knobs.runtime, "debug", None),
                getattr(knobs.compilation, "instrumentation_mode", None)), full

    def bound(self, grid, args: tuple, kwargs: dict) -> tuple | None:
        """What a launch made before with these arguments reads from the cache: (compiled kernel, the 3-D grid,
        the values after the positional arguments) where its launcher can be called directly (`launch_direct`),
        else None (the launch takes `_launch`)."""
        if not self._fast_path(grid, args):
            return None
        key, _ = self._key(args, kwargs)
        entry = self._compiled.get(key) if key is not None else None
        if entry is None or not entry[2]:
            return None
        return entry[0], tuple(grid) + (1,) * (3 - len(grid)), entry[1]


@functools.cache
def _triton_knobs():
    """Triton's settings module (Triton >= 3.4: where the launch hooks live), or None."""
    try:
        from triton import knobs
    except ImportError:
        return None
    return knobs


def hooks_set() -> bool:
    """Whether a Triton launch hook is installed (profilers): launches then take Triton's path."""
    knobs = _triton_knobs()
    return knobs is not None and (_hook_set(knobs.runtime.launch_enter_hook)
                                  or _hook_set(knobs.runtime.launch_exit_hook))


def launch_direct(compiled, grid3: tuple, stream: int, values: list, tail: list) -> None:
    """One launch of a compiled kernel through its launcher (`FastLaunch.bound`), on ``stream``."""
    compiled.run(*grid3, stream, compiled.function, compiled.packed_metadata, None, None, None, *values, *tail)


# Launches recorded by `replay.record`: thread ident -> the list of that thread's launches while it records
_RECORDING: dict[int, list] = {}


# the runner's call: grid x, y, z, stream, function, packed metadata, launch metadata, enter / exit hooks, then the
# kernel's arguments. Triton 3.7+ launchers name all nine; 3.5-3.6's CudaLauncher names the first five and takes
# the other four in its *args, in the same positions (its C launcher parses them from there)
_LAUNCHER_PARAMS = (9, 5)
_direct_ok: dict = {}


def _direct(compiled: Any) -> bool:
    """Whether the compiled kernel's launcher can be called directly: it has the attributes Triton's runner
    passes and takes the runner's positional call (`_LAUNCHER_PARAMS` named parameters, then *args; Triton
    3.x's CudaLauncher / HIPLauncher). Decided once per launcher class; anything else keeps the runner."""
    run = getattr(compiled, "run", None)
    if run is None or not hasattr(compiled, "function") or not hasattr(compiled, "packed_metadata"):
        return False
    cls = type(run)
    ok = _direct_ok.get(cls)
    if ok is None:
        try:
            params = list(inspect.signature(run).parameters.values())
        except (TypeError, ValueError):
            params = []
        lead = [p for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        ok = len(lead) in _LAUNCHER_PARAMS and bool(params) and params[-1].kind is inspect.Parameter.VAR_POSITIONAL
        _direct_ok[cls] = ok
    return ok


@functools.cache
def _driver() -> Any:
    """Triton's driver, imported once (an import statement costs host time on every launch)."""
    from triton.runtime import driver

    return driver


def _current_stream(device: int) -> int:
    """The current stream of `device`, as Triton's runner gets it."""
    return _driver().active.get_current_stream(device)


def fast_launch(kernel: Any) -> FastLaunch:
    """Wrap a `triton.jit` kernel that the host launches (not one called from other kernels)."""
    return FastLaunch(kernel)


def on_device_of(t: torch.Tensor):
    """A context making t's CUDA device the current one, where it is not (a null context otherwise, and for
    tensors not on CUDA). Triton launches on the current device and its stream, whatever device the
    tensors are on: a model on ``cuda:1`` while ``cuda:0`` is current would otherwise launch there. The ops
    enter it around their kernels (PyTorch's own ops guard the device themselves)."""
    if t.is_cuda and t.get_device() != torch.cuda.current_device():
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()
