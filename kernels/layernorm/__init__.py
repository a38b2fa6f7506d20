"""LayerNorm over the last dimension (`op.py`; Triton forward and backward kernels in `triton_layernorm.py`)."""

from .op import has_fast_kernel, layer_norm, layer_norm_unchecked

__all__ = ["has_fast_kernel", "layer_norm", "layer_norm_unchecked"]
