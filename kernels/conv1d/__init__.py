"""Depthwise conv1d of the Mamba mixers over token-major tensors (`op.py`; Triton kernels in `triton_conv1d.py`)."""

from .op import depthwise_conv1d, depthwise_conv1d_reference, has_fast_kernel

__all__ = ["depthwise_conv1d", "depthwise_conv1d_reference", "has_fast_kernel"]
