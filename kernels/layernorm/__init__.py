"""LayerNorm over the last dimension (`op.py`; Triton forward and backward kernels in `triton_layernorm.py`)."""

from .op import has_fast_kernel, layer_norm

__all__ = ["has_fast_kernel", "layer_norm"]
