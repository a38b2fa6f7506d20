"""vssm.kernels: the ops under the zoo (pure PyTorch references beside Triton kernels)."""

from .conv1d import depthwise_conv1d, depthwise_conv1d_reference
from .selective_scan import BACKENDS, default_backend, selective_scan, selective_scan_reference

__all__ = [
    "BACKENDS",
    "default_backend",
    "depthwise_conv1d",
    "depthwise_conv1d_reference",
    "selective_scan",
    "selective_scan_reference",
]
