"""Selective scan (Mamba-1 S6): the op, its pure-PyTorch reference, and its Triton kernels."""

from .op import BACKENDS, default_backend, selective_scan
from .reference import selective_scan_loop, selective_scan_reference, selective_scan_reference_backward

__all__ = [
    "BACKENDS",
    "default_backend",
    "selective_scan",
    "selective_scan_loop",
    "selective_scan_reference",
    "selective_scan_reference_backward",
]
