"""When an op may skip the torch.library dispatch: plain tensors in plain eager mode.

The ops are `torch.library.custom_op`s so that torch.compile, torch.export, FX, fvcore's jit trace and
fake / meta tensors see them as single nodes. In plain eager mode that machinery costs ~40 us of host
time per call with autograd (measured: 47 us against 5 us for a `torch.autograd.Function` on the same
trivial body), which adds up in launch-bound models; there the ops run their implementation through
an autograd.Function with the same forward, saved tensors and backward.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def plain_eager(*tensors) -> bool:
    """True when nothing traces, compiles or intercepts the call and every tensor is a plain, real one."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    mode = _get_current_dispatch_mode()
    if mode is not None and not getattr(mode, "vssm_plain_eager", False):  # `replay`'s recorder is transparent
        return False
    return all(t is None or (type(t) in _PLAIN and not t.is_meta) for t in tensors)
