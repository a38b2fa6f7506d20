"""Kernel launches with less host time: Triton's argument binding done once per specialization.

`kernel[grid](*args, **constexprs)` on a `triton.jit` function binds and specializes every argument on
every call: on one H200 machine's host an empty kernel launched in 17 us with 5 arguments and 43 us with
40, and the scan's kernels (45-62 arguments) in 81-131 us. A scan call launches three or four of them,
and in launch-bound models (MambaVision-T training, small batches) host time is step time.

`fast_launch(kernel)` keeps Triton's path for the first launch of each specialization (compiling or
taking Triton's own cache) and remembers the compiled kernel under a key that holds everything Triton
specializes on, and more: each tensor's dtype and 16-byte alignment, each int's value class (== 1,
multiple of 16, int32 / int64 / uint64 range), the type of every other argument, the keyword arguments
(constexprs and launch options) and the current device. Later launches with the same key go straight to
the compiled kernel's launcher. Triton's path is kept whenever it must run: under the interpreter
(``TRITON_INTERPRET=1``), when a launch hook or a pre-run hook is set (profilers), for constexprs passed by
position, and when ``VSSM_FAST_LAUNCH=0``. Not repeated on the cached path: Triton's check that the
global values a kernel reads have not changed since it was compiled (the wrapped kernels read constants).

Measured (H200 machine, Triton 3.6; `docs/bench/h200-2026-11-29-s15`): the results are bit for bit those
of Triton's path (tests/gpu/test_fast_launch_gpu.py). The host time is not settled: a launch of the scan's
kernels still took 52-106 us with it, on a host where the 40-argument empty kernel took 30 us through
Triton's path, so much of a launch's host time is elsewhere (the launcher itself); the scan call's host
time against mamba_ssm's, each measured in the same call, went from 3.4x without it to 2.4x with it (two
calls, two machines: not separated from host noise).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

__all__ = ["fast_launch", "FastLaunch"]

_TENSORS = (torch.Tensor, torch.nn.Parameter)


def _enabled() -> bool:
    value = os.environ.get("VSSM_FAST_LAUNCH", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"VSSM_FAST_LAUNCH={value!r}: expected 0 (Triton's launch path) or 1 (default)")
    return value == "1"


def _hook_set(hook) -> bool:
    """Whether a Triton launch hook is installed: None, or (Triton >= 3.5) an empty `HookChain`, is none."""
    if hook is None:
        return False
    calls = getattr(hook, "calls", None)
    return bool(calls) if calls is not None else True


def arg_key(args: tuple) -> tuple:
    """What Triton specializes a launch on, for positional arguments (a superset of its rules)."""
    key = []
    for a in args:
        t = type(a)
        if t is int:
            key.append((a == 1, a % 16 == 0, -(2**31) <= a < 2**31, -(2**63) <= a < 2**63))
        elif t in _TENSORS:
            key.append((a.dtype, a.data_ptr() % 16 == 0))
        elif a is None or t is bool:
            key.append(a)
        elif hasattr(a, "data_ptr"):  # tensor subclasses, triton.reinterpret's wrappers: pointers as well
            key.append((t, a.dtype, a.data_ptr() % 16 == 0))
        else:
            key.append(t)
    return tuple(key)


class FastLaunch:
    """A launchable wrapper of one `triton.jit` kernel (see the module docstring); other attributes are the
    kernel's."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        from triton.runtime.jit import JITFunction

        try:
            from triton import knobs  # Triton >= 3.4: where the launch hooks live
        except ImportError:
            knobs = None
        self._knobs = knobs
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
        if not self._jit or len(args) > self._positional or not _enabled() or getattr(self.kernel, "pre_run_hooks", None):
            return self.kernel[grid](*args, **kwargs)
        knobs = self._knobs
        if _hook_set(knobs.runtime.launch_enter_hook) or _hook_set(knobs.runtime.launch_exit_hook):
            return self.kernel[grid](*args, **kwargs)
        # keywords in the caller's order: a call site that orders them differently only adds an entry; the
        # debug and instrumentation settings are part of Triton's key too
        key = (torch.cuda.current_device(), arg_key(args), tuple(kwargs.items()),
               getattr(knobs.runtime, "debug", None), getattr(knobs.compilation, "instrumentation_mode", None))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self.kernel[grid](*args, **kwargs)
            self._compiled[key] = compiled
            return compiled
        # every parameter in order: the positional ones, then keywords or defaults (constexprs included,
        # as Triton's own launch passes them; the launcher skips them by the compiled signature)
        full = list(args)
        for name, default in self._params[len(args):]:
            full.append(kwargs.get(name, default))
        try:
            compiled[tuple(grid) + (1,) * (3 - len(grid))](*full)
        except (TypeError, ValueError, AttributeError) as e:
            # a Triton whose compiled kernels take their arguments differently (refused while the arguments
            # are read, before anything is launched): Triton's own path for this kernel from now on
            self._jit = False
            warnings.warn(f"vssm fast_launch: {type(e).__name__}: {e}; using Triton's launch path", stacklevel=3)
            return self.kernel[grid](*args, **kwargs)
        return compiled


def fast_launch(kernel: Any) -> FastLaunch:
    """Wrap a `triton.jit` kernel that the host launches (not one called from other kernels)."""
    return FastLaunch(kernel)
