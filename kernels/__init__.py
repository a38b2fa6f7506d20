"""vssm.kernels: the ops under the zoo (pure PyTorch references beside Triton kernels)."""

from .selective_scan import BACKENDS, default_backend, selective_scan, selective_scan_reference

__all__ = ["BACKENDS", "default_backend", "selective_scan", "selective_scan_reference"]
