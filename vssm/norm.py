"""`LayerNorm`: `torch.nn.LayerNorm` (same constructor, parameters and state_dict) that may run the fused op.

The forward runs `vssm.kernels.layernorm.layer_norm` (Triton kernels) only when all of these hold, and
``super().forward`` (F.layer_norm) otherwise:

- ``VSSM_FUSED_LN`` is ``auto`` (the default) and x has at least `AUTO_MIN_NUMEL` elements (or the
  module's own ``fused_min_numel``: SiMBA sets 0), or it is ``1`` (any size); ``0`` keeps F.layer_norm
  everywhere. Why a size: the fused op is a Python autograd node,
  whose host time per forward + backward (0.3-0.5 ms more than F.layer_norm's inside a VMamba-T training
  step on the H200 machine) only pays where its kernels save more GPU time than that (~21 us per million
  elements, forward + backward). Host-bound steps (small maps, small batches) keep F.layer_norm's C++ path;
- x is a CUDA tensor, or a CPU tensor under ``TRITON_INTERPRET=1`` (the tests);
- the module normalises over the last dimension only (``normalized_shape`` of length 1);
- the result can be the one F.layer_norm gives: outside autocast, the parameters are in x's dtype (other
  mixes keep PyTorch's own type promotion); under CUDA autocast, where layer_norm is on the float32
  list, x is float32 / bfloat16 / float16 and the output is float32, read from the half x as it is (no
  upcast copy). Autocast on other device types (the CPU keeps layer_norm in the lower precision) keeps
  F.layer_norm.

A torch.library custom op is not autocast-aware, hence the explicit rule here.

`LinearInputRmsNorm`: timm's `RmsNorm` (same parameters and state_dict) for a norm whose output only a Linear
reads (Vim's block norm): the output is in the dtype the Linear computes in (the autocast dtype under CUDA
autocast, else the weight's), and where no gradient is recorded the rows are normalized by one kernel pass
into that dtype (`vssm.kernels.layernorm.rms_norm`; Vim-Ti at 1248 on the H200: a float32 stream normalized
into bfloat16 instead of a float32 norm and a cast).

``lower_precision_output=True`` (for a norm whose output only a Linear reads): under CUDA autocast the
output is in the autocast dtype (bfloat16 / float16), the value the Linear would have cast it to. The
result of the model is the same, the fused op writes half the bytes and the cast's two copy kernels
(forward, and its backward) are gone. Without the fused op the module casts F.layer_norm's output itself.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
from timm.layers import RmsNorm as _TimmRmsNorm

from vssm.kernels.eager import plain_eager
from vssm.kernels.layernorm import has_fast_kernel, layer_norm_unchecked, rms_norm_unchecked
from vssm.timm_glue import fx_leaf

__all__ = ["AUTO_MIN_NUMEL", "LayerNorm", "LinearInputRmsNorm", "fused_layer_norm_enabled",
           "fused_layer_norm_min_numel"]

_HALF_OR_FLOAT = (torch.float32, torch.bfloat16, torch.float16)
_AUTOCAST_FP32 = ("cuda",)  # device types whose autocast puts layer_norm on the float32 list


# ``VSSM_FUSED_LN=auto``: the fused op from this many elements of x. H200 machine, 2026-11-30 (measured on
# 617c400, before the backward became one launch): the op's host time is 0.3-0.5 ms per forward + backward
# more than F.layer_norm's inside a training step; its kernels save ~21 us of GPU time per million elements
# (VMamba-T's stage-1 norm, 38.5 M elements, float32: 247 against 1056 us). VMamba-T training steps (bf16,
# batch 128, a fresh process each; docs/bench/h200-2026-11-30-s18): 82.7 ms from 2^25 elements (stem and
# stage 1) in one call, 95.5 / 92.9 in another; 86.8 / 90.4 from 2^24; 90.2 on every norm; 86.3 on none.
# Inference (one process, rules alternating): VMamba-T / -S 6859-6868 / 3833-3837 img/s from 2^25,
# 4800-6691 / 2779-3577 on every norm. Single samples in processes whose host time moves by ~15%.
AUTO_MIN_NUMEL = 1 << 25


def fused_layer_norm_min_numel(own: int | None = None) -> int | None:
    """``VSSM_FUSED_LN`` as the smallest input (in elements) that runs the fused op: ``auto`` (default)
    `own` where given (a module's ``fused_min_numel``), else `AUTO_MIN_NUMEL`; ``1`` 0 (every size); ``0``
    None (F.layer_norm everywhere)."""
    value = os.environ.get("VSSM_FUSED_LN", "auto").strip().lower()
    if value == "auto":
        return AUTO_MIN_NUMEL if own is None else own
    if value == "1":
        return 0
    if value == "0":
        return None
    raise ValueError(f"VSSM_FUSED_LN={value!r}: expected auto (the fused op on large inputs, default), "
                     "1 (on every input) or 0 (F.layer_norm)")


def fused_layer_norm_enabled() -> bool:
    """Whether `VSSM_FUSED_LN` lets the fused op run at all (``auto`` or ``1``)."""
    return fused_layer_norm_min_numel() is not None


def _large(x, min_numel: int) -> bool:
    """x has at least min_numel elements. A symbolic size (torch.compile with dynamic shapes, torch.export)
    counts as small, without a guard on it: such graphs keep aten's layer_norm, which the compilers fuse."""
    n = x.numel() if isinstance(x, torch.Tensor) else 0
    return type(n) is int and n >= min_numel


@fx_leaf  # one call_module node, as nn.LayerNorm (a torch.nn leaf) gives: graphs and node names unchanged
class LayerNorm(nn.LayerNorm):
    """`torch.nn.LayerNorm` whose forward may run the fused op (see the module docstring).

    lower_precision_output: under CUDA autocast, return the autocast dtype instead of float32 (only for
    a norm whose every reader casts to it anyway, such as a Linear). Not part of the state_dict.
    fused_min_numel: this norm's size for ``VSSM_FUSED_LN=auto`` (None: `AUTO_MIN_NUMEL`; 0: every size),
    for models whose step is bound by the GPU throughout. ``1`` and ``0`` override it.
    """

    # class defaults: modules pickled before these existed still run
    lower_precision_output = False
    fused_min_numel: int | None = None

    def __init__(self, *args, lower_precision_output: bool = False, fused_min_numel: int | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lower_precision_output = bool(lower_precision_output)
        if fused_min_numel is not None and (isinstance(fused_min_numel, bool) or not isinstance(fused_min_numel, int)
                                            or fused_min_numel < 0):
            raise ValueError(f"LayerNorm: `fused_min_numel` must be None or an int >= 0, got {fused_min_numel!r}")
        self.fused_min_numel = fused_min_numel

    def _autocast_out_dtype(self) -> torch.dtype:
        dtype = torch.get_autocast_dtype("cuda")
        return dtype if self.lower_precision_output and dtype in _HALF_OR_FLOAT else torch.float32

    def _fused_out_dtype(self, x: torch.Tensor, w: torch.Tensor | None,
                         b: torch.Tensor | None) -> torch.dtype | None:
        """The dtype the fused op must write to give F.layer_norm's result, or None to keep F.layer_norm.
        w, b: the module's weight and bias, read once per call (a parameter's lookup costs host time)."""
        if len(self.normalized_shape) != 1 or not isinstance(x, torch.Tensor) or x.dim() < 1:
            return None
        if x.shape[-1] != self.normalized_shape[0]:
            return None  # F.layer_norm's own error
        if not has_fast_kernel(x):
            return None  # not a kernel device or dtype, empty, too wide: the op would use PyTorch; F.layer_norm itself
        if (w is not None and not w.is_contiguous()) or (b is not None and not b.is_contiguous()):
            return None  # the unchecked op reads them as plain (C,) rows
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            if device_type not in _AUTOCAST_FP32:
                return None
            if (w is not None and w.dtype not in _HALF_OR_FLOAT) or (b is not None and b.dtype not in _HALF_OR_FLOAT):
                return None
            return self._autocast_out_dtype()
        if (w is not None and w.dtype != x.dtype) or (b is not None and b.dtype != x.dtype):
            return None
        return x.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        min_numel = fused_layer_norm_min_numel(self.fused_min_numel)
        if min_numel is not None and (min_numel == 0 or _large(x, min_numel)):
            w, b = self.weight, self.bias
            out_dtype = self._fused_out_dtype(x, w, b)
            if out_dtype is not None:
                return layer_norm_unchecked(x, w, b, self.eps, out_dtype)
        y = super().forward(x)
        if (self.lower_precision_output and y.dtype == torch.float32 and y.is_cuda
                and torch.is_autocast_enabled("cuda")):  # what autocast would cast for the Linear (not float64)
            y = y.to(self._autocast_out_dtype())
        return y

    def extra_repr(self) -> str:
        extra = ", lower_precision_output=True" if self.lower_precision_output else ""
        if self.fused_min_numel is not None:
            extra += f", fused_min_numel={self.fused_min_numel}"
        return super().extra_repr() + extra


@fx_leaf  # one call_module node: the dtype rules below read autocast state and the input's device
class LinearInputRmsNorm(_TimmRmsNorm):
    """timm's `RmsNorm` whose output is what a following Linear computes in (see the module docstring): the
    autocast dtype under CUDA autocast (the value the Linear would cast it to), else the weight's dtype (x's
    without a weight). Without a gradient to record, on the kernels' devices, one pass of the RMS kernel."""

    def _out_dtype(self, x: torch.Tensor) -> torch.dtype:
        if x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
            return torch.get_autocast_dtype("cuda")
        return self.weight.dtype if self.weight is not None else x.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self._out_dtype(x)
        w = self.weight
        if (len(self.normalized_shape) == 1 and x.dim() >= 1 and x.shape[-1] == self.normalized_shape[0]
                and has_fast_kernel(x) and (w is None or (w.dtype in _HALF_OR_FLOAT and w.device == x.device
                                                          and w.is_contiguous()))
                and not (torch.is_grad_enabled() and (x.requires_grad or (w is not None and w.requires_grad)))
                and plain_eager(x, w)):
            return rms_norm_unchecked(x, w, float(self.eps), dtype)
        return super().forward(x).to(dtype)
