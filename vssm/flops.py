"""FLOPs and parameter counts with fvcore, plus handles for the ops fvcore does not know.

Convention (the one the VMamba paper and code use, so our numbers compare with its table):

- fvcore's tracer and its default handles (conv, linear, matmul, einsum, norms, pooling), one fused
  multiply-add counted as **one** FLOP; element-wise ops (add, mul, exp, silu, softplus, ...) count 0.
- The selective scan ``torch.ops.vssm.selective_scan_fwd`` counts ``9*B*L*D*N + B*D*L`` for
  ``u: (B, D, L)``, ``A: (D, N)``: the official ``flops_selective_scan_fn`` with the ``D`` skip term and
  without the ``z`` gate. The direction plumbing around it (flips, cross-scan, merge) counts 0.
- ``scaled_dot_product_attention``: ``B*H*Lq*Lk*(E + Ev)`` (the two matmuls; softmax counts 0), the
  same as timm's attention written out with ``q @ k.T`` and ``attn @ v``.
- FFTs (``torch.fft`` as EinFFT uses it): the radix-2 estimate of 5 real FLOPs per point per stage,
  halved to multiply-add units, i.e. ``2.5 * numel * log2(n)`` for a complex FFT with ``n`` points per
  transform, and half that for real-input / real-output FFTs (``rfft``, ``irfft``).
- ``rms_norm`` like fvcore counts ``layer_norm`` (5 per element with a weight, 4 without).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "FLOP_HANDLES",
    "count_flops",
    "count_params",
    "fft_flop_handle",
    "scan_flop_handle",
    "sdpa_flop_handle",
    "selective_scan_flops",
]


def _shape(value: Any) -> list[int] | None:
    """Shape of a traced jit value, or None when it is not a complete tensor (e.g. an absent input)."""
    if value.isCompleteTensor():
        return list(value.type().sizes())
    return None


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1


def selective_scan_flops(batch: int, dim: int, length: int, d_state: int, directions: int = 1) -> int:
    """FLOPs of ``directions`` selective scans over (batch, dim, length) with ``d_state`` states.

    The official VMamba count: ``9*B*L*D*N`` for the recurrence and output, ``B*D*L`` for the
    ``D`` skip term; the ``z`` gate is not counted.
    """
    for name, v in (("batch", batch), ("dim", dim), ("length", length), ("d_state", d_state), ("directions", directions)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"selective_scan_flops: `{name}` must be a non-negative int, got {v!r}")
    return directions * (9 * batch * length * dim * d_state + batch * dim * length)


def scan_flop_handle(directions: int = 1) -> Callable[[list[Any], list[Any]], int]:
    """fvcore handle for a scan op whose inputs start ``(u, delta, A, ...)``.

    ``u`` holds every (batch, channel, step) element of one direction in any layout (``(B, D, L)``,
    ``(B, L, D)``, ``(B, K, D, L)`` with the K directions in it); ``A``'s last dimension is N.
    ``directions`` multiplies the count for a fused op that scans the same ``u`` several ways.
    """

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        u, a = _shape(inputs[0]), _shape(inputs[2])
        if u is None or a is None:
            raise ValueError("scan flop handle: the traced op has no complete shapes for `u` or `A`")
        elements = _numel(u)
        return directions * (9 * elements * a[-1] + elements)

    return handle


def sdpa_flop_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """``aten::scaled_dot_product_attention``: q @ k^T and attn @ v, multiply-add = 1."""
    q, k, v = (_shape(x) for x in inputs[:3])
    if q is None or k is None or v is None:
        raise ValueError("sdpa flop handle: q, k and v must have complete shapes")
    batch = _numel(torch.broadcast_shapes(tuple(q[:-2]), tuple(k[:-2]), tuple(v[:-2])))
    lq, e = q[-2], q[-1]
    lk, ev = k[-2], v[-1]
    return batch * lq * lk * (e + ev)


# name -> (kind, dims argument index, default dims). kind: c2c (complex in and out), r2c, c2r.
_FFT_OPS: dict[str, tuple[str, int, Any]] = {
    "aten::fft_fft": ("c2c", 2, -1),
    "aten::fft_ifft": ("c2c", 2, -1),
    "aten::fft_rfft": ("r2c", 2, -1),
    "aten::fft_irfft": ("c2r", 2, -1),
    "aten::fft_hfft": ("c2r", 2, -1),
    "aten::fft_ihfft": ("r2c", 2, -1),
    "aten::fft_fft2": ("c2c", 2, (-2, -1)),
    "aten::fft_ifft2": ("c2c", 2, (-2, -1)),
    "aten::fft_rfft2": ("r2c", 2, (-2, -1)),
    "aten::fft_irfft2": ("c2r", 2, (-2, -1)),
    "aten::fft_fftn": ("c2c", 2, None),
    "aten::fft_ifftn": ("c2c", 2, None),
    "aten::fft_rfftn": ("r2c", 2, None),
    "aten::fft_irfftn": ("c2r", 2, None),
    # the primitives torch.fft lowers to (seen when tracing below the Python API)
    "aten::_fft_c2c": ("c2c", 1, None),
    "aten::_fft_r2c": ("r2c", 1, None),
    "aten::_fft_c2r": ("c2r", 1, None),
}


def _constant(value: Any) -> Any:
    """Python value of a traced constant argument; lists built from constants included."""
    if value is None:
        return None
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    return value.toIValue()


def _fft_dims(value: Any, default: Any, rank: int, size_arg: Any) -> list[int]:
    dims = _constant(value)
    if dims is None:
        dims = default
    if dims is None:  # the n-d variants: the last len(s) dims, or all of them
        sizes = _constant(size_arg)
        dims = list(range(rank - len(sizes), rank)) if sizes else list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return [d % rank for d in dims]


def fft_flop_handle(op_name: str) -> Callable[[list[Any], list[Any]], int]:
    """fvcore handle for one of the FFT ops in ``_FFT_OPS`` (see the module docstring for the count)."""
    if op_name not in _FFT_OPS:
        raise ValueError(f"fft_flop_handle: `op_name` must be one of {sorted(_FFT_OPS)}, got {op_name!r}")
    kind, dims_index, default = _FFT_OPS[op_name]

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        # The real-valued side carries the signal's full length: the input of r2c, the output otherwise.
        signal = _shape(inputs[0]) if kind == "r2c" else _shape(outputs[0])
        if signal is None:
            raise ValueError(f"{op_name} flop handle: the traced op has no complete shape")
        size_arg = inputs[1] if dims_index == 2 else None
        dims = _fft_dims(inputs[dims_index] if len(inputs) > dims_index else None, default, len(signal), size_arg)
        sizes = _constant(size_arg)
        if kind == "r2c" and sizes is not None:
            # `n` / `s` pads or trims the signal before the transform
            sizes = [sizes] if isinstance(sizes, int) else list(sizes)
            for d, s in zip(dims, sizes):
                signal[d] = s
        points = _numel([signal[d] for d in dims])
        if points <= 1:
            return 0
        per_point = 2.5 if kind == "c2c" else 1.25
        return int(round(per_point * _numel(signal) * math.log2(points)))

    return handle


def _norm_handle(weight_index: int) -> Callable[[list[Any], list[Any]], int]:
    """A norm counted as fvcore counts aten::layer_norm: 5 per element with a weight, 4 without."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        has_weight = len(inputs) > weight_index and _shape(inputs[weight_index]) is not None
        return _numel(_shape(inputs[0])) * (5 if has_weight else 4)

    return handle


# Element-wise ops the official counter leaves out too: mapped to None so fvcore stays quiet about them.
_ZERO_OPS = (
    "aten::add", "aten::add_", "aten::sub", "aten::rsub", "aten::mul", "aten::mul_", "aten::div", "aten::neg",
    "aten::exp", "aten::log", "aten::silu", "aten::silu_", "aten::gelu", "aten::sigmoid", "aten::tanh",
    "aten::softplus", "aten::softmax", "aten::softshrink", "aten::relu", "aten::flip", "aten::mean", "aten::sum",
    "aten::pow", "aten::sqrt", "aten::rsqrt", "aten::real", "aten::imag", "aten::complex", "aten::view_as_real",
    "aten::view_as_complex", "aten::abs", "aten::pad", "aten::repeat", "aten::clone", "aten::max_pool2d",
    "aten::avg_pool2d", "aten::dropout", "aten::upsample_bicubic2d", "aten::rand", "aten::randn",
    "aten::bernoulli_", "aten::floor", "aten::div_", "aten::linspace", "aten::ones_like", "aten::empty_like",
    "aten::new_ones", "aten::where", "aten::lt", "aten::le", "aten::ne", "aten::argmax", "aten::unflatten",
    "aten::masked_fill_", "aten::fill_", "aten::expand_as", "aten::contiguous", "aten::hardtanh",
    "aten::leaky_relu", "aten::log_softmax", "aten::erf", "aten::scalar_tensor", "aten::im2col",
)

FLOP_HANDLES: dict[str, Callable[[list[Any], list[Any]], int] | None] = {
    "vssm::selective_scan_fwd": scan_flop_handle(),
    "aten::scaled_dot_product_attention": sdpa_flop_handle,
    "aten::rms_norm": _norm_handle(2),  # (input, normalized_shape, weight, eps)
    "vssm::layernorm_fwd": _norm_handle(1),  # the fused LayerNorm: (x, weight, bias, eps, out_dtype)
    **{name: fft_flop_handle(name) for name in _FFT_OPS},
    **dict.fromkeys(_ZERO_OPS),
}
"""fvcore op name -> handle, merged over fvcore's defaults by `count_flops`.

A kernel registered under another name (e.g. a fused multi-direction scan) adds itself here:
``FLOP_HANDLES["vssm::my_scan_fwd"] = scan_flop_handle(directions=2)``.
"""


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared tensor once)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_params: `model` must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def _input_shape(input_size: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        shape: tuple[int, ...] = (1, 3, input_size, input_size)
    elif isinstance(input_size, Sequence) and all(isinstance(s, int) and not isinstance(s, bool) for s in input_size):
        if len(input_size) == 2:
            shape = (1, 3, *input_size)
        elif len(input_size) == 3:
            shape = (1, *input_size)
        elif len(input_size) == 4:
            shape = tuple(input_size)
        else:
            shape = ()
    else:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise ValueError(
            "count_flops: `input_size` must be an int (square side), (H, W), (C, H, W) or (B, C, H, W) of "
            f"positive ints, got {input_size!r}"
        )
    return shape


def count_flops(
    model: nn.Module,
    input_size: int | Sequence[int] = (3, 224, 224),
    handles: dict[str, Callable | None] | None = None,
) -> dict[str, Any]:
    """Parameters and FLOPs of ``model`` on one input of ``input_size`` (convention: module docstring).

    Args:
        model: any nn.Module taking one image tensor; it is traced in eval mode under no_grad on its
            own device and dtype, and put back in its previous mode.
        input_size: side (int), (H, W), (C, H, W) or (B, C, H, W); batch 1 unless given.
        handles: extra or overriding fvcore handles, op name -> handle (None to count an op as 0).

    Returns:
        dict with ``params`` (int), ``flops`` (int, per batch), ``gflops`` (float), ``by_operator``
        (op -> FLOPs) and ``unsupported`` (op -> times seen; these count 0 and deserve a look).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_flops: `model` must be a torch.nn.Module, got {type(model).__name__}")
    if handles is not None and not isinstance(handles, dict):
        raise TypeError(f"count_flops: `handles` must be a dict of op name -> handle or None, got {type(handles).__name__}")
    from fvcore.nn import FlopCountAnalysis

    shape = _input_shape(input_size)
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.randn(shape, device=device, dtype=dtype)

    was_training = model.training
    model.eval()
    try:
        # the tracer and fvcore's own use of torch.jit warn on every call; the counts are what matter here
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, (x,))
            analysis.set_op_handle(**{**FLOP_HANDLES, **(handles or {})})
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            total = int(analysis.total())
            by_op = {k: int(v) for k, v in analysis.by_operator().items()}
            unsupported = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
    return {
        "params": count_params(model),
        "flops": total,
        "gflops": total / 1e9,
        "input_size": list(shape),
        "by_operator": by_op,
        "unsupported": unsupported,
    }
