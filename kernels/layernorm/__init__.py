"""LayerNorm, and RMSNorm's forward without a gradient, over the last dimension (`op.py`; Triton kernels in
`triton_layernorm.py`)."""

from .op import has_fast_kernel, layer_norm, layer_norm_unchecked, rms_norm, rms_norm_unchecked

__all__ = ["has_fast_kernel", "layer_norm", "layer_norm_unchecked", "rms_norm", "rms_norm_unchecked"]
