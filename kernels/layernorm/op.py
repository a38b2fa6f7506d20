"""LayerNorm over the last dimension: ``torch.nn.functional.layer_norm(x, (C,), weight, bias, eps)``.

For the rows x[m] (x viewed as (M, C)):

    mean[m] = sum_c x[m, c] / C,   rstd[m] = 1 / sqrt(sum_c (x[m, c] - mean[m])**2 / C + eps)
    y[m, c] = (x[m, c] - mean[m]) rstd[m] weight[c] + bias[c]

with the statistics and the arithmetic in float32 (float64 for float64 x) and y written in ``out_dtype``
(default: x's dtype). Under autocast, F.layer_norm upcasts a half x to float32 and returns float32;
``out_dtype=torch.float32`` gives that result from the half x as it is (no upcast copy).

Backward, with xhat = (x - mean) rstd and wdy = dy weight (dy without a weight):

    dx = rstd (wdy - xhat mean_c(xhat wdy) - mean_c(wdy)),  dweight = sum_m xhat dy,  dbias = sum_m dy

`rms_norm` is RMSNorm (no mean subtracted, no bias): the same forward kernel where no gradient is recorded,
``torch.rms_norm`` otherwise.

One op pair, ``vssm::layernorm_fwd`` (y, stats: the (2, M) means and rstds) / ``vssm::layernorm_bwd``
(dx, dweight, dbias), with fake implementations (torch.compile, torch.export); the backward reads x and
the forward's statistics. In plain eager mode an autograd.Function with the same bodies and y as its
only output runs instead (less host time per call). On CUDA (and for CPU tensors under ``TRITON_INTERPRET=1``) the Triton kernels run for float32,
bfloat16 and float16 x; elsewhere, for float64 x, for empty x and for rows wider than `MAX_C`, PyTorch
(F.layer_norm forward, the formulas above for the backward), which also serves as the tests' reference.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Optional

import torch
import torch.nn.functional as F

from ..eager import plain_eager
from ..env import interpreting

__all__ = ["has_fast_kernel", "layer_norm", "layer_norm_unchecked", "rms_norm", "rms_norm_unchecked", "MAX_C"]

MAX_C = 16384  # the kernels hold a whole row in registers; wider rows take the PyTorch path
_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _on_kernel_device(x: torch.Tensor) -> bool:
    """CUDA tensors, or CPU tensors under the Triton interpreter (as `selective_scan`'s `check_device`)."""
    return x.is_cuda or (x.device.type == "cpu" and interpreting())


def _use_triton(x: torch.Tensor) -> bool:
    return (x.dtype in _KERNEL_DTYPES and x.numel() > 0 and x.shape[-1] <= MAX_C and _on_kernel_device(x))


def has_fast_kernel(x) -> bool:
    """Whether `layer_norm` runs the Triton kernels for x; False for what is not a tensor (FX proxies)."""
    return isinstance(x, torch.Tensor) and _use_triton(x)


# ----------------------------------------------------------------------------------------------
# PyTorch path (the reference)


def _stats(x: torch.Tensor, eps: float) -> torch.Tensor:
    """(2, M): the means of the rows of x (M, C), then their rstds, in the accumulation dtype (two passes)."""
    xf = x.to(_acc_dtype(x))
    mean = xf.mean(dim=-1)
    var = (xf - mean[:, None]).square().mean(dim=-1)
    return torch.stack([mean, torch.rsqrt(var + eps)])


def _torch_forward(x, weight, bias, eps: float, out_dtype: torch.dtype) -> torch.Tensor:
    C = x.shape[-1]
    if C == 0:
        return x.new_empty(x.shape, dtype=out_dtype)
    same = all(t is None or t.dtype == x.dtype for t in (weight, bias))
    if same and out_dtype == x.dtype:
        return F.layer_norm(x, (C,), weight, bias, eps)
    acc = _acc_dtype(x)
    w = weight.to(acc) if weight is not None else None
    b = bias.to(acc) if bias is not None else None
    return F.layer_norm(x.to(acc), (C,), w, b, eps).to(out_dtype)


def _torch_backward(dy, x, weight, stats):
    """dx, dweight, dbias in the accumulation dtype (the module docstring's formulas)."""
    acc = _acc_dtype(x)
    mean, rstd = stats[0], stats[1]
    xhat = (x.to(acc) - mean[:, None]) * rstd[:, None]
    g = dy.to(acc)
    wdy = g * weight.to(acc) if weight is not None else g
    C = max(x.shape[-1], 1)
    c1 = (xhat * wdy).sum(dim=-1, keepdim=True) / C
    c2 = wdy.sum(dim=-1, keepdim=True) / C
    dx = rstd[:, None] * (wdy - xhat * c1 - c2)
    return dx, (xhat * g).sum(dim=0), g.sum(dim=0)


# ----------------------------------------------------------------------------------------------
# forward and backward bodies, then the op pair and the eager Function around them


@functools.cache
def _kernels():
    """`triton_layernorm`, imported on first use (this module imports without Triton) and then kept: an
    import statement in the bodies would cost host time on every call."""
    from . import triton_layernorm

    return triton_layernorm


def _forward(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], eps: float,
             out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, C) -> y (M, C) in out_dtype (contiguous) and stats (2, M) in the accumulation dtype: the means,
    then the rstds. The forward op's body, and the eager Function's (which calls the kernels itself where
    it has decided on them)."""
    if _use_triton(x):
        return _kernels().triton_layer_norm_fwd(x, weight, bias, eps, out_dtype)
    with torch.no_grad():
        stats = _stats(x, eps)
        y = x.new_empty(x.shape, dtype=out_dtype).copy_(_torch_forward(x, weight, bias, eps, out_dtype))
    return y, stats


def _backward_body(dy, x, weight, bias, stats, need_dw: bool = True, need_db: bool = True,
                   fast: bool | None = None):
    """dx in x's dtype, dweight / dbias in the parameters' dtypes (None where absent; on the kernels' path
    also where not needed), each its own storage. `fast`: `_use_triton(x)` where the caller knows it (the
    forward decided it on the same x)."""
    if fast is None:
        fast = _use_triton(x)
    if fast:
        return _kernels().triton_layer_norm_bwd(dy, x, weight, bias, stats, need_dw=need_dw, need_db=need_db)
    with torch.no_grad():
        dx, dw, db = _torch_backward(dy, x, weight, stats)
    return (dx.to(x.dtype).contiguous(), dw.to(weight.dtype).contiguous() if weight is not None else None,
            db.to(bias.dtype).contiguous() if bias is not None else None)


_ln_fwd = torch.library.custom_op("vssm::layernorm_fwd", mutates_args=())(_forward)


@_ln_fwd.register_fake
def _ln_fwd_fake(x, weight, bias, eps, out_dtype):
    return x.new_empty(x.shape, dtype=out_dtype), x.new_empty((2,) + tuple(x.shape[:1]), dtype=_acc_dtype(x))


def _ln_bwd_impl(dy: torch.Tensor, x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                 stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dx ((M, C) in x's dtype), dweight (weight's shape and dtype; empty without a weight), dbias (likewise)."""
    dx, dw, db = _backward_body(dy, x, weight, bias, stats.contiguous())  # the kernel reads stats as (2, M) rows
    # absent parameters: an empty tensor each (two outputs of a custom op may not share one)
    return dx, (dw if dw is not None else x.new_empty((0,))), (db if db is not None else x.new_empty((0,)))


_ln_bwd = torch.library.custom_op("vssm::layernorm_bwd", mutates_args=())(_ln_bwd_impl)


@_ln_bwd.register_fake
def _ln_bwd_fake(dy, x, weight, bias, stats):
    return (x.new_empty(x.shape), weight.new_empty(weight.shape) if weight is not None else x.new_empty((0,)),
            bias.new_empty(bias.shape) if bias is not None else x.new_empty((0,)))


def _setup_context(ctx, inputs, output):
    x, weight, bias, eps, out_dtype = inputs
    ctx.save_for_backward(x, weight, bias, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no zero tensor made for the statistics' (absent) gradient


def _op_backward(ctx, dy, dstats=None):
    x, weight, bias, stats = ctx.saved_tensors
    if dy is None:
        return None, None, None, None, None
    dx, dw, db = _ln_bwd(dy, x, weight, bias, stats)
    return dx, (dw if weight is not None else None), (db if bias is not None else None), None, None


torch.library.register_autograd("vssm::layernorm_fwd", _op_backward, setup_context=_setup_context)


class _EagerLayerNorm(torch.autograd.Function):
    """The op pair without the dispatcher (see `vssm.kernels.eager`): y is the only output, the statistics
    are saved, not returned (fewer autograd outputs: less host time per call)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, out_dtype):
        fast = _use_triton(x)
        if fast:
            y, stats = _kernels().triton_layer_norm_fwd(x, weight, bias, eps, out_dtype)
        else:
            y, stats = _forward(x, weight, bias, eps, out_dtype)
        ctx.save_for_backward(x, weight, bias, stats)
        ctx.fast = fast  # the backward's path, decided once
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable  # the kernels' backward has no derivative: a second one raises
    def backward(ctx, dy):
        x, weight, bias, stats = ctx.saved_tensors
        need = ctx.needs_input_grad  # a frozen weight / bias: no partial sums for it
        return (*_backward_body(dy, x, weight, bias, stats, need[1], need[2], ctx.fast), None, None)


def _rows_op(rows: torch.Tensor, weight, bias, eps: float, out_dtype: torch.dtype) -> torch.Tensor:
    if plain_eager(rows, weight, bias):
        return _EagerLayerNorm.apply(rows, weight, bias, eps, out_dtype)
    return torch.ops.vssm.layernorm_fwd(rows, weight, bias, eps, out_dtype)[0]


def layer_norm_unchecked(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float,
                         out_dtype: torch.dtype) -> torch.Tensor:
    """`layer_norm` without its argument checks, for callers that guarantee them (`vssm.norm.LayerNorm`):
    x a floating tensor of at least one dimension, weight / bias None or contiguous (C,) floating tensors on
    x's device, eps a float, out_dtype a floating dtype."""
    C = x.shape[-1]
    rows = x.reshape(-1, C) if x.dim() != 2 else x
    return _rows_op(rows, weight, bias, eps, out_dtype).view(x.shape)


# ----------------------------------------------------------------------------------------------
# public entry


def _check_param(name: str, t, x: torch.Tensor, C: int, fn: str = "layer_norm") -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: `{name}` must be a tensor of shape ({C},) or None, got {type(t).__name__}")
    if tuple(t.shape) != (C,):
        raise ValueError(f"{fn}: `{name}` has shape {tuple(t.shape)}, expected ({C},) (C = x.shape[-1])")
    if not t.is_floating_point():
        raise TypeError(f"{fn}: `{name}` must be a floating-point tensor, got {t.dtype}")
    if t.device != x.device:
        raise ValueError(f"{fn}: `{name}` is on {t.device}, `x` on {x.device}")


def _check_x_eps_dtype(fn: str, x, eps, out_dtype) -> torch.dtype:
    """The checks `layer_norm` and `rms_norm` share; returns the output dtype (x's where None)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: `x` must be a tensor of shape (..., C), got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError(f"{fn}: `x` must have at least one dimension (..., C), got a 0-d tensor")
    if not x.is_floating_point():
        raise TypeError(f"{fn}: `x` must be a floating-point tensor, got {x.dtype}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"{fn}: `eps` must be a real number >= 0, got {eps!r}")
    if out_dtype is None:
        out_dtype = x.dtype
    if not isinstance(out_dtype, torch.dtype) or not out_dtype.is_floating_point:
        raise TypeError(f"{fn}: `out_dtype` must be a floating-point torch.dtype or None, got {out_dtype!r}")
    return out_dtype


def layer_norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5, *, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """LayerNorm of x (..., C) over its last dimension, see the module docstring.

    weight, bias: (C,) or None. The statistics and arithmetic are float32 (float64 for float64 x); the
    output is in ``out_dtype`` (default x's dtype), shaped like x. x is read through its strides where
    its rows can be viewed as (M, C) with unit stride along C; otherwise a contiguous copy is made.
    Differentiable in x, weight and bias (dx in x's dtype, dweight / dbias in the parameters' dtypes).
    """
    out_dtype = _check_x_eps_dtype("layer_norm", x, eps, out_dtype)
    C = x.shape[-1]
    _check_param("weight", weight, x, C)
    _check_param("bias", bias, x, C)
    rows = x.reshape(math.prod(x.shape[:-1]), C)  # a view where the leading dims allow one; the op copies rows with stride(-1) != 1
    if weight is not None:
        weight = weight.contiguous()
    if bias is not None:
        bias = bias.contiguous()
    return _rows_op(rows, weight, bias, float(eps), out_dtype).view(x.shape)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6, *,
             out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """RMSNorm of x (..., C) over its last dimension: ``y = x / sqrt(mean_c(x**2) + eps) * weight``, the
    arithmetic in float32 (float64 for float64 x), y in ``out_dtype`` (default x's dtype), shaped like x.

    Where no gradient is recorded (grad mode off, or neither x nor weight requires grad) and nothing traces or
    compiles, one kernel pass on the kernels' devices (`has_fast_kernel`): x read once, y written once in
    out_dtype (a float32 x normalized into bfloat16 needs no float32 y and no cast). Elsewhere, and for the
    gradient, it is ``torch.rms_norm`` in the accumulation dtype, then cast (differentiable; the tests' oracle).
    """
    out_dtype = _check_x_eps_dtype("rms_norm", x, eps, out_dtype)
    C = x.shape[-1]
    _check_param("weight", weight, x, C, "rms_norm")
    grad = torch.is_grad_enabled() and (x.requires_grad or (weight is not None and weight.requires_grad))
    if not grad and _use_triton(x) and plain_eager(x, weight):
        return rms_norm_unchecked(x, weight.contiguous() if weight is not None else None, float(eps), out_dtype)
    acc = _acc_dtype(x)
    y = torch.rms_norm(x.to(acc), (C,), weight.to(acc) if weight is not None else None, float(eps))
    return y.to(out_dtype)


def rms_norm_unchecked(x: torch.Tensor, weight: torch.Tensor | None, eps: float, out_dtype: torch.dtype) -> torch.Tensor:
    """`rms_norm`'s kernel pass without its checks, for callers that made them (`vssm.norm.LinearInputRmsNorm`):
    no gradient recorded, x on a kernel device in a kernel dtype with at most `MAX_C` columns, weight None or a
    contiguous (C,) floating tensor on x's device, eps a float. Nothing is kept for a backward."""
    C = x.shape[-1]
    rows = x.reshape(-1, C) if x.dim() != 2 else x
    return _kernels().triton_layer_norm_fwd(rows, weight, None, eps, out_dtype, rms=True,
                                            keep_stats=False)[0].view(x.shape)
