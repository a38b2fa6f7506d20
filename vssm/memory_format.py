"""The layout of the conv models' maps: stored channels_last (NHWC in memory) on CUDA.

cuDNN's convolutions and PyTorch's BatchNorm kernels take a channels_last map as it is; an NCHW map costs
cuDNN a transpose in and out of every convolution (MambaVision-T's training step on an H200: 45.5 -> 30.9 ms
of GPU work with its maps channels_last). Only activations change layout: parameters, shapes and state_dicts
stay as they are. Outside CUDA (the CPU's kernels were not measured to gain) and under torch.fx tracing (a
graph runs whatever layout it is given) the maps keep the caller's layout.
"""

from __future__ import annotations

import torch

from vssm.timm_glue import is_symbolic

__all__ = ["CHANNELS_LAST_DEVICES", "maps_layout", "run_in_maps_layout"]

CHANNELS_LAST_DEVICES = frozenset({"cuda"})  # device types whose maps are stored channels_last


def maps_layout(x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """The (B, C, H, W) map `x` stored channels_last when `enabled` and x is on one of `CHANNELS_LAST_DEVICES`;
    else x itself. A 1-channel map is both layouts at once (PyTorch keeps its strides): see `run_in_maps_layout`."""
    if enabled and not is_symbolic(x) and x.device.type in CHANNELS_LAST_DEVICES:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def run_in_maps_layout(layers: torch.nn.Sequential, x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """`layers(x)` with x, and the first layer's output, in the maps' layout (`maps_layout`): the first
    convolution of a 1-channel input (a single-channel image) gives an NCHW output, which would keep every later
    map NCHW."""
    x = maps_layout(x, enabled)
    for i, layer in enumerate(layers):
        x = layer(x)
        if i == 0:
            x = maps_layout(x, enabled)
    return x
