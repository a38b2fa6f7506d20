"""Multi-tap depthwise conv1d over token-major input, with an optional SiLU: the conv of the Mamba mixers.

For x (batch, L, C), weight (K, C, W), bias (K, C) or None and one integer offset per tap set k:

    out[b, k, t, c] = act(bias[k, c] + sum_j weight[k, c, j] x[b, t + offsets[k] + j, c])

with x zero outside [0, L) and act = silu or the identity; out is (batch, K, L, C). The offset picks
the padding: ``-(W - 1)`` is Mamba's causal conv, ``0`` with the taps mirrored is the causal conv of the
reversed sequence seen in natural order (Vim's backward branch, no flip), ``-((W - 1) // 2)`` is
PyTorch's ``padding="same"`` (MambaVision).

One op pair, ``vssm::dwconv1d_fwd`` / ``vssm::dwconv1d_bwd``, with fake implementations (torch.compile,
torch.export); the backward recomputes the pre-activation from x, so only x is kept for it. On CUDA
the Triton kernels (`triton_conv1d.py`) run; elsewhere shifted multiply-adds in PyTorch (float32
accumulation), which also serve as the reference of the tests.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..eager import plain_eager
from ..launch import on_device_of
from ..layout import new_rows

__all__ = ["depthwise_conv1d", "depthwise_conv1d_reference", "has_fast_kernel"]


def _shift(x: torch.Tensor, s: int) -> torch.Tensor:
    """y[:, t] = x[:, t + s] along the token axis (dim 1), zero where t + s is outside [0, L)."""
    L = x.shape[1]
    if abs(s) >= L:
        return torch.zeros_like(x)
    if s >= 0:
        return F.pad(x[:, s:], (0, 0, 0, s))
    return F.pad(x[:, :L + s], (0, 0, -s, 0))


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _pre_activation(x, weight, bias, offsets) -> list[torch.Tensor]:
    acc_dtype = _acc_dtype(x)
    xf = x.to(acc_dtype)
    pres = []
    for k, off in enumerate(offsets):
        acc = torch.zeros_like(xf) if bias is None else bias[k].to(acc_dtype).expand_as(xf)
        for j in range(weight.shape[-1]):
            acc = acc + _shift(xf, off + j) * weight[k, :, j].to(acc_dtype)
        pres.append(acc)
    return pres


def depthwise_conv1d_reference(x, weight, bias, offsets: Sequence[int], silu: bool) -> torch.Tensor:
    """The definition in PyTorch ops (float32 or float64 accumulation); differentiable by autograd."""
    pres = _pre_activation(x, weight, bias, offsets)
    return torch.stack([F.silu(p) if silu else p for p in pres], dim=1).to(x.dtype)


def _reference_backward(dout, x, weight, bias, offsets, silu):
    """The adjoint of the definition: dx, dweight, dbias (None without bias), in the accumulation dtype."""
    acc_dtype = _acc_dtype(x)
    xf = x.to(acc_dtype)
    pres = _pre_activation(x, weight, bias, offsets)
    dx = torch.zeros_like(xf)
    dw = torch.zeros(weight.shape, dtype=acc_dtype, device=x.device)
    db = torch.zeros(weight.shape[:2], dtype=acc_dtype, device=x.device) if bias is not None else None
    for k, off in enumerate(offsets):
        g = dout[:, k].to(acc_dtype)
        if silu:
            sig = torch.sigmoid(pres[k])
            g = g * sig * (1 + pres[k] * (1 - sig))
        for j in range(weight.shape[-1]):
            dx = dx + _shift(g, -(off + j)) * weight[k, :, j].to(acc_dtype)
            dw[k, :, j] = (g * _shift(xf, off + j)).sum(dim=(0, 1))
        if db is not None:
            db[k] = g.sum(dim=(0, 1))
    return dx, dw, db


MAX_TAP_SETS = 8  # the Triton kernels take the offsets as this many scalars; more tap sets run the reference


def _use_triton(x: torch.Tensor, offsets) -> bool:
    return x.is_cuda and len(offsets) <= MAX_TAP_SETS


def has_fast_kernel(x) -> bool:
    """Whether `depthwise_conv1d` runs a kernel on x's device (CUDA, Triton); elsewhere the modules keep
    F.conv1d (oneDNN on the CPU). False for what is not a tensor (FX proxies)."""
    return isinstance(x, torch.Tensor) and x.is_cuda


def new_conv_out(x, K: int, channel_major: bool) -> torch.Tensor:
    """The empty (batch, K, L, C) output: stored (K, batch, L, C), or with ``channel_major`` (K, C, batch, L)
    with rows of `layout.padded_len(L)` tokens (the batch inside the rows: each tap set's output is one
    (C, batch x L) matrix, see `layout.new_rows`)."""
    batch, L, C = x.shape
    if channel_major:
        return new_rows(x, (batch, K, C, L), batch_inner=True).transpose(2, 3)
    return x.new_empty((K, batch, L, C)).transpose(0, 1)


def _conv_fwd_impl(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], offsets: list[int],
              silu: bool, channel_major: bool) -> torch.Tensor:
    if _use_triton(x, offsets):
        from .triton_conv1d import triton_conv_forward

        with on_device_of(x):
            return triton_conv_forward(x, weight, bias, tuple(offsets), silu, channel_major)
    with torch.no_grad():
        return new_conv_out(x, weight.shape[0], channel_major).copy_(
            depthwise_conv1d_reference(x, weight, bias, offsets, silu))


_conv_fwd = torch.library.custom_op("vssm::dwconv1d_fwd", mutates_args=())(_conv_fwd_impl)


@_conv_fwd.register_fake
def _conv_fwd_fake(x, weight, bias, offsets, silu, channel_major):
    return new_conv_out(x, weight.shape[0], channel_major)


def _conv_bwd_impl(dout: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
              offsets: list[int], silu: bool) -> list[torch.Tensor]:
    """dx (x's shape and dtype), dweight, dbias (empty without bias)."""
    if _use_triton(x, offsets):
        from .triton_conv1d import triton_conv_backward

        with on_device_of(x):
            dx, dw, db = triton_conv_backward(dout, x, weight, bias, tuple(offsets), silu)
    else:
        dx, dw, db = _reference_backward(dout, x, weight, bias, offsets, silu)
    empty = x.new_empty((0,))
    return [dx.to(x.dtype).contiguous(), dw.to(weight.dtype).contiguous(),
            db.to(bias.dtype).contiguous() if db is not None else empty]


_conv_bwd = torch.library.custom_op("vssm::dwconv1d_bwd", mutates_args=())(_conv_bwd_impl)


@_conv_bwd.register_fake
def _conv_bwd_fake(dout, x, weight, bias, offsets, silu):
    return [x.new_empty(x.shape), weight.new_empty(weight.shape),
            bias.new_empty(bias.shape) if bias is not None else x.new_empty((0,))]


def _setup_context(ctx, inputs, output):
    x, weight, bias, offsets, silu, channel_major = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.offsets, ctx.silu = offsets, silu


def _backward(ctx, dout, bwd=None):
    x, weight, bias = ctx.saved_tensors
    dx, dw, db = (bwd or _conv_bwd)(dout, x, weight, bias, ctx.offsets, ctx.silu)
    return dx, dw, (db if bias is not None else None), None, None, None


torch.library.register_autograd("vssm::dwconv1d_fwd", _backward, setup_context=_setup_context)


class _EagerConv(torch.autograd.Function):
    """The op pair without the dispatcher (see `vssm.kernels.eager`)."""

    @staticmethod
    def forward(ctx, *inputs):
        out = _conv_fwd_impl(*inputs)
        _setup_context(ctx, inputs, out)
        return out

    @staticmethod
    def backward(ctx, dout):
        return _backward(ctx, dout, bwd=_conv_bwd_impl)


def depthwise_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     offsets: Sequence[int] | None = None, silu: bool = False,
                     channel_major: bool = False) -> torch.Tensor:
    """K depthwise convs of token-major x (batch, L, C) -> (batch, K, L, C), see the module docstring.

    weight (K, C, W) (or (C, W) for K = 1), bias (K, C) / (C,) or None, offsets: K ints (default: causal,
    ``-(W - 1)`` for every k). x is read through its strides (a channel slice of a Linear's output needs
    no copy); out is in x's dtype, stored (K, batch, L, C) (each tap set one (batch x L, C) matrix) or,
    with ``channel_major``, (K, C, batch, L) (what a consumer reading channels along time wants, e.g. the
    selective scan at N > 1); the accumulation is float32 (float64 for float64 x).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"depthwise_conv1d: `x` must be a (batch, L, C) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (2, 3):
        raise ValueError("depthwise_conv1d: `weight` must be a (K, C, W) or (C, W) tensor")
    if weight.dim() == 2:
        weight = weight.unsqueeze(0)
    K, C, W = weight.shape
    if C != x.shape[2] or W < 1 or K < 1:
        raise ValueError(f"depthwise_conv1d: `weight` has shape {tuple(weight.shape)}, expected (K, C={x.shape[2]}, "
                         "W >= 1)")
    if bias is not None:
        if bias.dim() == 1:
            bias = bias.unsqueeze(0)
        if tuple(bias.shape) != (K, C):
            raise ValueError(f"depthwise_conv1d: `bias` has shape {tuple(bias.shape)}, expected ({K}, {C})")
    if offsets is None:
        offsets = [-(W - 1)] * K
    offsets = [int(o) for o in offsets]
    if len(offsets) != K:
        raise ValueError(f"depthwise_conv1d: `offsets` needs one int per tap set (K = {K}), got {offsets}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"depthwise_conv1d: `{name}` is on {t.device}, `x` on {x.device}")
    args = (x, weight, bias, offsets, bool(silu), bool(channel_major))
    if plain_eager(x, weight, bias):
        return _EagerConv.apply(*args)
    return torch.ops.vssm.dwconv1d_fwd(*args)
