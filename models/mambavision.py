"""MambaVision: a hybrid Mamba-Transformer pyramid backbone, on `vssm.kernels.selective_scan`.

Paper: "MambaVision: A Hybrid Mamba-Transformer Vision Backbone", Hatamizadeh and Kautz, CVPR 2025,
arXiv:2407.08083. Official code and weights: https://github.com/NVlabs/MambaVision (code: NVIDIA Source
Code License-NC; weights: CC-BY-NC-SA-4.0; both non-commercial). This file is written from the paper and a
reading of the official model; it holds none of the official code.

The network (strides 4 / 8 / 16 / 32, widths C, 2C, 4C, 8C; maps (B, C, H, W), stored channels_last on CUDA):

- stem: conv3x3/2 -> BN -> ReLU -> conv3x3/2 -> BN -> ReLU (widths ``stem_dim``, C);
- stages 1-2: residual conv blocks ``x + DropPath(BN(conv3x3(GELU(BN(conv3x3(x))))))``;
- stages 3-4: the map is cut into non-overlapping windows (zero-padded on the right and bottom to a
  multiple of the window), and each window is a token sequence for pre-norm blocks
  ``x + DropPath(g1 * mixer(LN(x)))``, ``x + DropPath(g2 * MLP(LN(x)))``; the first half of a stage's
  blocks (the first ``depth // 2 + 1`` when the depth is odd) mix with `MambaVisionMixer`, the rest with
  multi-head self-attention inside the window; g1 / g2 are layer-scale vectors where the config has them;
- a conv3x3/2 (no bias) downsample closes stages 1-3; a BatchNorm closes stage 4, then the average
  pool and the linear classifier.

`MambaVisionMixer` splits in_proj's output into an x and a z half; each goes through its own
non-causal ("same"-padded) depthwise conv1d and SiLU; the x half feeds x_proj / dt_proj and the selective
scan (no z gate); the scan output is concatenated with the conv-gated z half and projected by out_proj.
Two quirks of the official mixer are kept because the released weights were trained with them:
dt_proj's bias enters delta twice (in the projection and again as the scan's delta_bias), and
neither conv1d has a bias (the official builder passes ``conv_bias // 2``, which is 0).

Module names follow the official ``MambaVision`` (``patch_embed.conv_down``, ``levels.{i}.blocks`` /
``.downsample.reduction``, ``norm``, ``head``), so official state_dicts load unchanged; the official
registered names (``mamba_vision_T`` ...) are aliases of the models here.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import (
    Attention,
    DropPath,
    LayerNorm2d,
    Mlp,
    calculate_drop_path_rates,
    get_device_dtype,
    trunc_normal_,
)
from timm.models import (
    checkpoint_seq,
    generate_default_cfgs,
    register_model,
)
from timm.models._features import feature_take_indices

from vssm.kernels import selective_scan
from vssm.kernels.conv1d import depthwise_conv1d, has_fast_kernel
from vssm.kernels.selective_scan.op import backward_follows
from vssm.memory_format import run_in_maps_layout
from vssm.param_cache import derived
from vssm.ssm_init import init_ssm_, positive_int, scan_param
from vssm.timm_glue import (
    TimmModel,
    alias_cfgs,
    build_model,
    fx_leaf,
    is_symbolic,
    load_pretrained,
    register_aliases,
)

__all__ = [
    "MambaVision",
    "MambaVisionBlock",
    "MambaVisionMixer",
    "MambaVisionStage",
    "checkpoint_filter_fn",
    "window_partition",
    "window_reverse",
]


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, C, H, W) with H, W multiples of the window -> (B * windows, window_size**2, C) token sequences,
    windows in row-major order, tokens row-major inside each window."""
    B, C, H, W = x.shape
    ws = window_size
    x = x.reshape(B, C, H // ws, ws, W // ws, ws).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, ws * ws, C)


def pad_to_windows(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, C, H, W) zero-padded on the bottom / right to whole windows (a leaf of torch.fx graphs: the
    padding depends on the size)."""
    H, W = x.shape[-2:]
    pad_b, pad_r = (window_size - H % window_size) % window_size, (window_size - W % window_size) % window_size
    return F.pad(x, (0, pad_r, 0, pad_b)) if pad_b or pad_r else x


torch.fx.wrap("pad_to_windows")


def window_reverse(
    windows: torch.Tensor, window_size: int, height: int, width: int, channels_last: bool = False
) -> torch.Tensor:
    """Inverse of `window_partition`: (B * windows, window_size**2, C) -> (B, C, height, width), contiguous,
    or with ``channels_last`` stored (B, height, width, C) (a view of the windows when there is one per map)."""
    ws, C = window_size, windows.shape[-1]
    x = windows.reshape(-1, height // ws, width // ws, ws, ws, C)
    if channels_last:
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, C).permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last)  # a no-op on windows of contiguous tokens
    return x.permute(0, 5, 1, 3, 2, 4).reshape(-1, C, height, width).contiguous()  # (reshape may give a view)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether the (B, C, H, W) map `x` is stored (B, H, W, C) with C > 1 (a 1-channel map is both layouts)."""
    return x.shape[1] > 1 and x.stride(1) == 1


def crop_map(x: torch.Tensor, height: int, width: int, channels_last: bool = False) -> torch.Tensor:
    """``x[:, :, :height, :width]`` made dense, stored (B, H, W, C) with ``channels_last``, else contiguous; x itself
    when nothing is cut."""
    if x.shape[-2] == height and x.shape[-1] == width:
        return x
    return x[:, :, :height, :width].contiguous(memory_format=torch.channels_last if channels_last else
                                               torch.contiguous_format)


# leaves of torch.fx graphs: they branch on sizes and strides
torch.fx.wrap("window_reverse")
torch.fx.wrap("is_channels_last")
torch.fx.wrap("crop_map")


class MambaVisionStem(nn.Module):
    """conv3x3/2 -> BN -> ReLU -> conv3x3/2 -> BN -> ReLU; indices match the official ``conv_down`` keys."""

    def __init__(self, in_chans: int = 3, stem_dim: int = 32, dim: int = 80, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv_down = nn.Sequential(
            nn.Conv2d(in_chans, stem_dim, kernel_size=3, stride=2, padding=1, bias=False, **dd),
            nn.BatchNorm2d(stem_dim, eps=1e-4, **dd),
            nn.ReLU(),
            nn.Conv2d(stem_dim, dim, kernel_size=3, stride=2, padding=1, bias=False, **dd),
            nn.BatchNorm2d(dim, eps=1e-4, **dd),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """``channels_last``: the maps stored channels_last where `vssm.memory_format` says so."""
        return run_in_maps_layout(self.conv_down, x, channels_last)


class Downsample(nn.Module):
    """conv3x3/2 without bias, width x2 (official ``downsample.reduction.0``)."""

    def __init__(self, dim: int, out_dim: int, device=None, dtype=None) -> None:
        super().__init__()
        self.reduction = nn.Sequential(
            nn.Conv2d(
                dim, out_dim, kernel_size=3, stride=2, padding=1, bias=False, device=device, dtype=dtype
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(x)


class ConvBlock(nn.Module):
    """``x + DropPath(gamma * BN(conv3x3(GELU_tanh(BN(conv3x3(x))))))``; gamma only with ``layer_scale``."""

    def __init__(
        self,
        dim: int,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, **dd)
        self.norm1 = nn.BatchNorm2d(dim, **dd)
        self.act1 = nn.GELU(approximate="tanh")
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, **dd)
        self.norm2 = nn.BatchNorm2d(dim, **dd)
        self.gamma = (
            nn.Parameter(torch.full((dim,), float(layer_scale), **dd)) if layer_scale is not None else None
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


@fx_leaf
class MambaVisionMixer(nn.Module):
    """The MambaVision token mixer: a selective scan over half the channels beside a conv-gated other half.

    For tokens x of shape (batch, L, d_model), E = expand * d_model and H = E / 2:

        x, z   = in_proj(x)                            (two halves of width H)
        x, z   = silu(conv1d_x(x)), silu(conv1d_z(z))  (depthwise, kernel d_conv, "same" padding)
        dt,B,C = x_proj(x)                             (widths dt_rank, d_state, d_state)
        delta  = dt_proj(dt)                           (weight and bias)
        y      = selective_scan(x, delta, -exp(A_log), B, C, D, delta_bias=dt_proj.bias, softplus)
        out    = out_proj(concat(y, z))

    Args:
        d_model: token width. d_state: SSM state size N. d_conv: depthwise conv kernel.
        expand: inner width E = expand * d_model (must be even). dt_rank: ``"auto"`` = ceil(d_model / 16).
        dt_min, dt_max, dt_init_floor: the Mamba dt init of dt_proj's bias (`vssm.ssm_init.init_ssm_`).
        conv_bias: bias in the two convs (False as officially). bias: bias in in_proj / out_proj.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 8,
        d_conv: int = 3,
        expand: int | float = 1,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = False,
        bias: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.d_model = positive_int("MambaVisionMixer", "d_model", d_model)
        self.d_state = positive_int("MambaVisionMixer", "d_state", d_state)
        self.d_conv = positive_int("MambaVisionMixer", "d_conv", d_conv)
        if isinstance(expand, bool) or not isinstance(expand, (int, float)) or expand <= 0:
            raise ValueError(f"MambaVisionMixer: `expand` must be a positive number, got {expand!r}")
        self.d_inner = int(expand * d_model)
        if self.d_inner < 2 or self.d_inner % 2:
            raise ValueError(
                f"MambaVisionMixer: expand * d_model = {expand} * {d_model} must be an even int >= 2 "
                "(two halves)"
            )
        self.dt_rank = (
            math.ceil(d_model / 16)
            if dt_rank == "auto"
            else positive_int("MambaVisionMixer", "dt_rank", dt_rank)
        )
        if not 0 < dt_min <= dt_max:
            raise ValueError(
                f"MambaVisionMixer: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}"
            )
        self.dt_min, self.dt_max, self.dt_init_floor = dt_min, dt_max, dt_init_floor
        half = self.d_inner // 2

        self.in_proj = nn.Linear(d_model, self.d_inner, bias=bias, **dd)
        self.x_proj = nn.Linear(half, self.dt_rank + 2 * d_state, bias=False, **dd)
        self.dt_proj = nn.Linear(self.dt_rank, half, bias=True, **dd)
        # A_log and D stay float32 whatever `dtype` is: the scan decays exp(dt * A) in float32
        self.A_log = nn.Parameter(torch.empty(half, d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(half, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **dd)
        self.conv1d_x = nn.Conv1d(half, half, kernel_size=d_conv, groups=half, bias=conv_bias, **dd)
        self.conv1d_z = nn.Conv1d(half, half, kernel_size=d_conv, groups=half, bias=conv_bias, **dd)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """The Mamba SSM init (`vssm.ssm_init.init_ssm_`): dt_proj, A_log = log(1..N), D = 1."""
        init_ssm_(
            self.dt_proj.weight,
            self.dt_proj.bias,
            self.A_log,
            self.D,
            dt_rank=self.dt_rank,
            dt_min=self.dt_min,
            dt_max=self.dt_max,
            dt_init_floor=self.dt_init_floor,
        )

    def _conv_params(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Both convs' weights as one (E, 1, d_conv) depthwise weight (x half, then z half), and the bias
        (built once for inference, `vssm.param_cache`)."""
        convs = (self.conv1d_x, self.conv1d_z)

        def build():
            weight = torch.cat([c.weight for c in convs], dim=0)
            bias = torch.cat([c.bias for c in convs], dim=0) if convs[0].bias is not None else None
            return weight, bias

        return derived(self, "conv", [t for c in convs for t in (c.weight, c.bias) if t is not None], build)

    def _conv(self, xz: torch.Tensor) -> torch.Tensor:
        """silu of both depthwise convs as one grouped conv over (batch, E, L), "same" padded."""
        weight, bias = self._conv_params()
        k = self.d_conv
        if k % 2 == 0:  # "same" with an even kernel pads one more step on the right
            xz = F.pad(xz, ((k - 1) // 2, k // 2))
            return F.silu(F.conv1d(xz, weight, bias, groups=self.d_inner))
        return F.silu(F.conv1d(xz, weight, bias, padding=k // 2, groups=self.d_inner))

    def _conv_tokens(self, xz: torch.Tensor) -> torch.Tensor:
        """`_conv` through the depthwise conv op: token-major xz (batch, L, E) -> (batch, L, E) stored (E, batch, L)."""
        weight, bias = self._conv_params()
        return depthwise_conv1d(xz, weight[:, 0], bias, [-((self.d_conv - 1) // 2)], silu=True, channel_major=True)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, L, d_model) -> (batch, L, d_model)."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"MambaVisionMixer: input has shape {tuple(x.shape)}, "
                f"expected (batch, L, d_model={self.d_model})"
            )
        half = self.d_inner // 2
        xz = self.in_proj(x)  # (batch, L, E)
        grad = backward_follows(xz)
        if has_fast_kernel(xz) and not grad:
            # inference: one kernel over the token-major in_proj output, stored channel-major (the scan
            # reads few channels over many steps). With a backward to follow, cuDNN's grouped conv measured
            # faster at MambaVision-T's sizes (H200, bf16, batch 128: 58.6 vs 60.3 ms per training step;
            # inference 11.8 vs 12.9 ms the other way round)
            xz = self._conv_tokens(xz).transpose(1, 2)  # (batch, E, L), stored (E, batch, L)
        else:
            xz = self._conv(xz.transpose(1, 2))  # (batch, E, L)
        # one split node: its backward writes both halves' gradients into one tensor (slices zero-fill a tensor
        # each and add them)
        u, z = torch.split(xz, half, dim=1)
        if grad:
            # the x half copied token-major once, as x_proj's input (F.linear would copy the channel-major view
            # itself) and the scan's u: autograd keeps this one copy for both, and the z half of the conv
            # output is freed after the concatenation (as the storage of a saved u it stayed alive: one
            # (batch, L, E / 2) tensor per mixer more than the official mixer keeps)
            tokens = u.transpose(1, 2).contiguous()  # (batch, L, E / 2)
            u = tokens.transpose(1, 2)
        else:
            tokens = u.transpose(1, 2)
        x_dbl = F.linear(tokens, self.x_proj.weight)  # (batch, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        # its bias here, and once more as delta_bias: the official mixer's sum. dt (a strided view) as the 2-D
        # matrix it is: one addmm with the bias (a 3-D strided input takes a matmul, then an add)
        delta = F.linear(dt.flatten(0, 1), self.dt_proj.weight, self.dt_proj.bias).view(
            *dt.shape[:2], self.dt_proj.out_features
        )
        y = selective_scan(
            u,
            delta.transpose(1, 2),
            derived(self, "A", [self.A_log], lambda: -torch.exp(scan_param(self.A_log))),
            B.transpose(1, 2),
            C.transpose(1, 2),
            scan_param(self.D),
            delta_bias=scan_param(self.dt_proj.bias),
            delta_softplus=True,
        )
        return self.out_proj(torch.cat([y.to(z.dtype).transpose(1, 2), z.transpose(1, 2)], dim=-1))

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, d_conv={self.d_conv}, "
            f"dt_rank={self.dt_rank}"
        )


class MambaVisionBlock(nn.Module):
    """``x + DropPath(g1 * mixer(LN(x)))`` then ``x + DropPath(g2 * MLP(LN(x)))`` on (batch, L, dim) tokens.

    The mixer is `MambaVisionMixer` or, with ``attention=True``, multi-head self-attention (timm's).
    g1 / g2 (official ``gamma_1`` / ``gamma_2``) exist only when ``layer_scale`` is given.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attention: bool = False,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        d_state: int = 8,
        d_conv: int = 3,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.attention = attention
        self.norm1 = nn.LayerNorm(dim, **dd)
        if attention:
            if dim % num_heads:
                raise ValueError(f"MambaVision: width {dim} is not divisible by num_heads={num_heads}")
            self.mixer = Attention(
                dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, **dd
            )
        else:
            self.mixer = MambaVisionMixer(dim, d_state=d_state, d_conv=d_conv, expand=1, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, **dd)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop, **dd)
        if layer_scale is not None:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(layer_scale), **dd))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(layer_scale), **dd))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixer(self.norm1(x))
        x = x + self.drop_path(y if self.gamma_1 is None else self.gamma_1 * y)
        y = self.mlp(self.norm2(x))
        return x + self.drop_path(y if self.gamma_2 is None else self.gamma_2 * y)


class MambaVisionStage(nn.Module):
    """Blocks on an NCHW map, then the downsample into the next stage (official ``levels.{i}``).

    ``window_size=None``: conv blocks on the map itself. Otherwise the blocks run on the tokens of each
    window (the map zero-padded on the right / bottom to whole windows, the padding cropped after).
    """

    def __init__(
        self, blocks: list[nn.Module], window_size: int | None, downsample: nn.Module | None
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.Sequential(*blocks)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.grad_checkpointing = False

    def _run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.window_size is None:
            return self._run_blocks(x)
        H, W = x.shape[-2:]
        ws = self.window_size
        nhwc = is_channels_last(x)  # the map's layout is kept (see `MambaVision.channels_last`)
        x = pad_to_windows(x, ws)
        Hp, Wp = x.shape[-2:]
        x = window_reverse(self._run_blocks(window_partition(x, ws)), ws, Hp, Wp, channels_last=nhwc)
        return crop_map(x, H, W, channels_last=nhwc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.forward_blocks(x))


def _attention_start(depth: int) -> int:
    """Index of a hybrid stage's first attention block (the official rule)."""
    return depth // 2 + 1 if depth % 2 else depth // 2


class MambaVision(TimmModel, nn.Module):
    """MambaVision backbone / classifier (the official ``MambaVision``).

    Args:
        in_chans: image channels. num_classes: classes (0: no classifier). global_pool: 'avg' or ''.
        depths: blocks per stage (four stages: two conv, two hybrid). embed_dim: width C of stage 1
            (official ``dim``); stage i has C * 2**i. stem_dim: width of the first stem conv (``in_dim``).
        num_heads: attention heads per stage (stages 3-4 use them). window_size: attention window per
            stage (stages 3-4 use them). mlp_ratio: MLP hidden ratio. qkv_bias: bias of the qkv projection.
        d_state, d_conv: `MambaVisionMixer` state size and conv kernel.
        layer_scale: initial layer-scale of the hybrid blocks (None: none). layer_scale_conv: the same for
            the conv blocks (no released model uses it).
        drop_rate: dropout before the classifier. proj_drop_rate: dropout after attention / MLP projections
            (the official ``drop_rate``). attn_drop_rate: attention-weight dropout.
            drop_path_rate: stochastic depth, linear over all blocks.
        feature_norms: add one LayerNorm2d per stage output (``outnorm{i}``, as the official detection /
            segmentation backbone); ``forward_intermediates(norm=True)`` applies them. Set by
            ``features_only``.

    The init is the official one: every Linear (the mixers' dt_proj included, which overrides the Mamba dt
    init) trunc-normal(0.02) with zero bias; convs keep PyTorch's default; norms ones / zeros.
    """

    # as the official model, no_weight_decay() is empty: its trainer (timm's optimizer factory) exempts only
    # 1-D parameters and biases, so the 2-D A_log is decayed and D, the layer-scales and the norms are not
    decay_marked_parameters = True
    # on CUDA the maps are stored (B, H, W, C) (`vssm.memory_format`); a single window is then a view of its map.
    # False keeps the input's layout
    channels_last: bool = True

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        depths: tuple[int, ...] = (1, 3, 8, 4),
        embed_dim: int = 80,
        stem_dim: int = 32,
        num_heads: tuple[int, ...] = (2, 4, 8, 16),
        window_size: tuple[int, ...] = (8, 8, 14, 7),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        d_state: int = 8,
        d_conv: int = 3,
        layer_scale: float | None = None,
        layer_scale_conv: float | None = None,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        feature_norms: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.in_chans = positive_int("MambaVision", "in_chans", in_chans)
        depths, num_heads, window_size = tuple(depths), tuple(num_heads), tuple(window_size)
        for name, value in (("depths", depths), ("num_heads", num_heads), ("window_size", window_size)):
            if len(value) != 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
                raise ValueError(
                    f"MambaVision: `{name}` must be four positive ints (one per stage), got {value!r}"
                )
        positive_int("MambaVision", "embed_dim", embed_dim)
        positive_int("MambaVision", "stem_dim", stem_dim)
        if global_pool not in ("avg", ""):
            raise ValueError(
                f"MambaVision: `global_pool` must be 'avg' or '' (no pooling), got {global_pool!r}"
            )
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.depths = depths
        self.dims = [embed_dim * 2**i for i in range(4)]
        self.num_features = self.head_hidden_size = self.dims[-1]
        self.feature_norms = bool(feature_norms)

        self.patch_embed = MambaVisionStem(in_chans, stem_dim, embed_dim, **dd)
        dpr = calculate_drop_path_rates(drop_path_rate, sum(depths))
        self.levels = nn.ModuleList()
        self.feature_info = []
        start = 0
        for i, (depth, dim) in enumerate(zip(depths, self.dims)):
            rates = dpr[start : start + depth]
            start += depth
            if i < 2:
                blocks = [ConvBlock(dim, rates[j], layer_scale_conv, **dd) for j in range(depth)]
                window = None
            else:
                first_attention = _attention_start(depth)
                blocks = [
                    MambaVisionBlock(
                        dim,
                        num_heads[i],
                        attention=j >= first_attention,
                        mlp_ratio=mlp_ratio,
                        qkv_bias=qkv_bias,
                        proj_drop=proj_drop_rate,
                        attn_drop=attn_drop_rate,
                        drop_path=rates[j],
                        layer_scale=layer_scale,
                        d_state=d_state,
                        d_conv=d_conv,
                        **dd,
                    )
                    for j in range(depth)
                ]
                window = window_size[i]
            down = Downsample(dim, self.dims[i + 1], **dd) if i < 3 else None
            self.levels.append(MambaVisionStage(blocks, window, down))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"levels.{i}.blocks"))
        if self.feature_norms:
            for i, dim in enumerate(self.dims):
                self.add_module(f"outnorm{i}", LayerNorm2d(dim, **dd))
        self.norm = nn.BatchNorm2d(self.num_features, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ----------------------------------------------------------------------------------------- timm API

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^patch_embed",
            blocks=r"^levels\.(\d+)"
            if coarse
            else [
                (r"^levels\.(\d+)\.blocks\.(\d+)", None),
                (r"^levels\.(\d+)\.downsample", (99999,)),  # the downsample closes its stage
                (r"^norm|^outnorm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.levels:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(
                    f"MambaVision: `global_pool` must be 'avg' or '' (no pooling), got {global_pool!r}"
                )
            self.global_pool = global_pool
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"MambaVision: `num_classes` must be an int >= 0, got {num_classes!r}")
        self.num_classes = num_classes
        dd = get_device_dtype(self.patch_embed.conv_down[0])
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def _check_input(self, x: torch.Tensor) -> None:
        if is_symbolic(x):  # torch.fx: no shape to check
            return
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_chans or 0 in x.shape[2:]:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"MambaVision: input must be (batch, {self.in_chans}, H, W) with H, W >= 1, got {got}"
            )

    def _norm_intermediate(self, index: int, x: torch.Tensor) -> torch.Tensor:
        norm = getattr(self, f"outnorm{index}", None)
        if norm is not None:
            return norm(x)
        if index == len(self.depths) - 1:  # without per-stage norms only the last stage has one
            return self.norm(x)
        return x

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs before each downsample (strides 4 / 8 / 16 / 32), NCHW.

        Args:
            indices: last n stages if int, all if None, else the stage indices (negative from the end).
            norm: apply the per-stage norms (``feature_norms``), else the final BatchNorm to the last stage.
            stop_early: skip the stages after the last one requested.
            output_fmt: 'NCHW' (the only layout).
            intermediates_only: return only the list; otherwise (forward_features output, list).
        """
        if output_fmt != "NCHW":
            raise ValueError(f"MambaVision: `output_fmt` must be 'NCHW', got {output_fmt!r}")
        self._check_input(x)
        take_indices, max_index = feature_take_indices(len(self.levels), indices)
        stages = self.levels[: max_index + 1] if stop_early else self.levels
        intermediates = []
        x = self.patch_embed(x, channels_last=self.channels_last)
        for i, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if i in take_indices:
                intermediates.append(self._norm_intermediate(i, x) if norm else x)
            x = stage.downsample(x)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(
        self,
        indices: int | list[int] | tuple[int, ...] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop what the requested intermediates do not need: later stages, the last kept downsample,
        unused per-stage norms, and (optionally) the classifier and the final norm."""
        take_indices, max_index = feature_take_indices(len(self.levels), indices)
        self.levels = self.levels[: max_index + 1]
        self.levels[-1].downsample = nn.Identity()
        for i in range(len(self.depths)):
            if i not in take_indices and hasattr(self, f"outnorm{i}"):
                delattr(self, f"outnorm{i}")
        if max_index < len(self.depths) - 1:
            self.num_features = self.head_hidden_size = self.dims[max_index]
            prune_head = prune_norm = True  # the final norm and the classifier are sized for the last stage
        if prune_head:
            self.reset_classifier(0, "")
        if prune_norm or self.feature_norms:
            self.norm = nn.Identity()
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_chans, H, W) -> normalized last-stage map (batch, num_features, ~H/32, ~W/32)."""
        self._check_input(x)
        x = self.patch_embed(x, channels_last=self.channels_last)
        for stage in self.levels:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
            x = self.head_drop(x)
            return x if pre_logits else self.head(x)
        # unpooled: the classifier on every position, maps back in NCHW
        x = self.head_drop(x)
        return x if pre_logits else self.head(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def load_pretrained(self, checkpoint_path: str, prefix: str = "") -> None:
        """Load an official release file (``*.pth.tar``: ``{"state_dict": ..., ...}``) weights-only.

        Files written by the official (timm) trainer can pickle its argparse Namespace beside the weights;
        that one class is allowed, anything else is refused. The ``state_dict`` weights are taken (not an
        EMA copy), as the official loader does. A classifier of another size than the checkpoint's is left as
        initialised; RGB stem weights are adapted to other input channels.
        """
        load_pretrained(self, checkpoint_path, checkpoint_filter_fn, trusted=[argparse.Namespace], prefix=prefix)


# ------------------------------------------------------------------------------------------- checkpoints


def checkpoint_filter_fn(state_dict: dict[str, Any], model: MambaVision) -> dict[str, torch.Tensor]:
    """Official checkpoint (``{"state_dict": ...}``, ``{"model": ...}`` or the bare state_dict) -> this
    model's state_dict. Keys are the official ones already; this unwraps the dict, strips the DDP
    ``module.`` and the ``encoder.`` prefixes the official loader strips, and gives the per-stage feature
    norms of a ``features_only`` model, which no classification checkpoint has, their current values."""
    for key in ("state_dict", "model"):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    out = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in ("module.", "encoder."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    for k, v in model.state_dict().items():
        if k.startswith("outnorm") and k not in out:
            out[k] = v
    return out


def _create_mambavision(variant: str, pretrained: bool = False, **kwargs) -> MambaVision:
    feature_cfg = dict(out_indices=(0, 1, 2, 3), feature_cls="getter")
    if kwargs.get("features_only", False):
        if kwargs.get("feature_cls", "getter") != "getter":
            # hooks would see the hybrid stages' window token sequences, not maps
            raise ValueError(
                "MambaVision: features_only supports feature_cls='getter' (NCHW maps through "
                "forward_intermediates), "
                f"got {kwargs['feature_cls']!r}"
            )
        # the official detection / segmentation backbone normalises every stage output with a LayerNorm2d
        kwargs.setdefault("feature_norms", True)
        feature_cfg["norm"] = kwargs["feature_norms"]
    return build_model(
        MambaVision,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=feature_cfg,
        **kwargs,
    )


def _cfg(url: str = "", **kwargs) -> dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 1.0,
        "crop_mode": "center",
        "interpolation": "bicubic",
        "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.conv_down.0",
        "classifier": "head",
        "license": "cc-by-nc-sa-4.0",  # the released weights' licence (non-commercial)
        "paper_ids": "arXiv:2407.08083",
        "paper_name": "MambaVision: A Hybrid Mamba-Transformer Vision Backbone",
        "origin_url": "https://github.com/NVlabs/MambaVision",
        # a release file written by the official (timm) trainer may hold an EMA copy and an argparse
        # Namespace beside the weights: MambaVision.load_pretrained takes its state_dict, as officially
        "custom_load": True,
        **kwargs,
    }


def _release(repo: str, filename: str, note: str, **kwargs) -> dict[str, Any]:
    return _cfg(url=f"https://huggingface.co/nvidia/{repo}/resolve/main/{filename}", notes=(note,), **kwargs)


# name -> (pretrained tag, cfg): the official cfgs (crop_pct, crop_mode, input size) of each release file
_CFGS = {
    "mambavision_t": (
        "in1k",
        _release("MambaVision-T-1K", "mambavision_tiny_1k.pth.tar", "ImageNet-1k, top-1 82.3"),
    ),
    "mambavision_t2": (
        "in1k",
        _release(
            "MambaVision-T2-1K", "mambavision_tiny2_1k.pth.tar", "ImageNet-1k, top-1 82.7", crop_pct=0.98
        ),
    ),
    "mambavision_s": (
        "in1k",
        _release(
            "MambaVision-S-1K", "mambavision_small_1k.pth.tar", "ImageNet-1k, top-1 83.3", crop_pct=0.93
        ),
    ),
    "mambavision_b": (
        "in1k",
        _release("MambaVision-B-1K", "mambavision_base_1k.pth.tar", "ImageNet-1k, top-1 84.2"),
    ),
    "mambavision_l": (
        "in1k",
        _release("MambaVision-L-1K", "mambavision_large_1k.pth.tar", "ImageNet-1k, top-1 85.0"),
    ),
    "mambavision_l2": (
        "in1k",
        _release("MambaVision-L2-1K", "mambavision_large2_1k.pth.tar", "ImageNet-1k, top-1 85.3"),
    ),
    "mambavision_b_21k": (
        "in21k_ft_in1k",
        _release(
            "MambaVision-B-21K",
            "mambavision_base_21k.pth.tar",
            "ImageNet-21k pretrained, ImageNet-1k top-1 84.9",
        ),
    ),
    "mambavision_l_21k": (
        "in21k_ft_in1k",
        _release(
            "MambaVision-L-21K",
            "mambavision_large_21k.pth.tar",
            "ImageNet-21k pretrained, ImageNet-1k top-1 86.1",
        ),
    ),
    "mambavision_l2_512_21k": (
        "in21k_ft_in1k",
        _release(
            "MambaVision-L2-512-21K",
            "mambavision_L2_21k_240m_512.pth.tar",
            "ImageNet-21k pretrained, ImageNet-1k top-1 87.3 at 512x512",
            input_size=(3, 512, 512),
            pool_size=(16, 16),
            crop_pct=0.93,
            crop_mode="squash",
        ),
    ),
    "mambavision_l3_256_21k": (
        "in21k_ft_in1k",
        _release(
            "MambaVision-L3-256-21K",
            "mambavision_L3_21k_740m_256.pth.tar",
            "ImageNet-21k pretrained, ImageNet-1k top-1 87.3 at 256x256",
            input_size=(3, 256, 256),
            pool_size=(8, 8),
        ),
    ),
    "mambavision_l3_512_21k": (
        "in21k_ft_in1k",
        _release(
            "MambaVision-L3-512-21K",
            "mambavision_L3_21k_740m_512.pth.tar",
            "ImageNet-21k pretrained, ImageNet-1k top-1 88.1 at 512x512",
            input_size=(3, 512, 512),
            pool_size=(16, 16),
            crop_pct=0.93,
            crop_mode="squash",
        ),
    ),
}

# The official registry's names (NVlabs/MambaVision mambavision/models/mamba_vision.py), kept as aliases.
_ALIASES = {
    "mamba_vision_T": "mambavision_t",
    "mamba_vision_T2": "mambavision_t2",
    "mamba_vision_S": "mambavision_s",
    "mamba_vision_B": "mambavision_b",
    "mamba_vision_L": "mambavision_l",
    "mamba_vision_L2": "mambavision_l2",
    "mamba_vision_B_21k": "mambavision_b_21k",
    "mamba_vision_L_21k": "mambavision_l_21k",
    "mamba_vision_L2_512_21k": "mambavision_l2_512_21k",
    "mamba_vision_L3_256_21k": "mambavision_l3_256_21k",
    "mamba_vision_L3_512_21k": "mambavision_l3_512_21k",
}

default_cfgs = generate_default_cfgs(
    {
        **{f"{name}.{tag}": cfg for name, (tag, cfg) in _CFGS.items()},
        **alias_cfgs({f"{name}.{tag}": cfg for name, (tag, cfg) in _CFGS.items()}, _ALIASES),
    }
)

# the official builders' arguments (``dim`` -> embed_dim, ``in_dim`` -> stem_dim)
_T = dict(depths=(1, 3, 8, 4), embed_dim=80, stem_dim=32, num_heads=(2, 4, 8, 16), drop_path_rate=0.2)
_L_HEADS = (4, 8, 16, 32)
_ARGS = {
    "mambavision_t": _T,
    "mambavision_t2": dict(_T, depths=(1, 3, 11, 4)),
    "mambavision_s": dict(
        depths=(3, 3, 7, 5), embed_dim=96, stem_dim=64, num_heads=(2, 4, 8, 16), drop_path_rate=0.2
    ),
    "mambavision_b": dict(
        depths=(3, 3, 10, 5),
        embed_dim=128,
        stem_dim=64,
        num_heads=(2, 4, 8, 16),
        drop_path_rate=0.3,
        layer_scale=1e-5,
    ),
    "mambavision_l": dict(
        depths=(3, 3, 10, 5),
        embed_dim=196,
        stem_dim=64,
        num_heads=_L_HEADS,
        drop_path_rate=0.3,
        layer_scale=1e-5,
    ),
    "mambavision_l2": dict(
        depths=(3, 3, 12, 5),
        embed_dim=196,
        stem_dim=64,
        num_heads=_L_HEADS,
        drop_path_rate=0.3,
        layer_scale=1e-5,
    ),
    "mambavision_l3": dict(
        depths=(3, 3, 20, 10),
        embed_dim=256,
        stem_dim=64,
        num_heads=_L_HEADS,
        drop_path_rate=0.5,
        layer_scale=1e-5,
    ),
}
_ARGS["mambavision_b_21k"] = _ARGS["mambavision_b"]
_ARGS["mambavision_l_21k"] = _ARGS["mambavision_l"]
_ARGS["mambavision_l2_512_21k"] = dict(_ARGS["mambavision_l2"], window_size=(8, 8, 32, 16))
_ARGS["mambavision_l3_256_21k"] = dict(_ARGS["mambavision_l3"], window_size=(8, 8, 16, 8))
_ARGS["mambavision_l3_512_21k"] = dict(_ARGS["mambavision_l3"], window_size=(8, 8, 32, 16))


def _build(variant: str, base: str, pretrained: bool, kwargs: dict[str, Any]) -> MambaVision:
    return _create_mambavision(variant, pretrained=pretrained, **dict(_ARGS[base], **kwargs))


@register_model
def mambavision_t(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-T: C 80, depths 1/3/8/4 (31.8M params)."""
    return _build("mambavision_t", "mambavision_t", pretrained, kwargs)


@register_model
def mambavision_t2(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-T2: C 80, depths 1/3/11/4 (35.1M params)."""
    return _build("mambavision_t2", "mambavision_t2", pretrained, kwargs)


@register_model
def mambavision_s(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-S: C 96, depths 3/3/7/5 (50.1M params)."""
    return _build("mambavision_s", "mambavision_s", pretrained, kwargs)


@register_model
def mambavision_b(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-B: C 128, depths 3/3/10/5, layer scale (97.7M params)."""
    return _build("mambavision_b", "mambavision_b", pretrained, kwargs)


@register_model
def mambavision_l(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L: C 196, depths 3/3/10/5, heads 4-32, layer scale (228.0M params)."""
    return _build("mambavision_l", "mambavision_l", pretrained, kwargs)


@register_model
def mambavision_l2(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L2: C 196, depths 3/3/12/5, heads 4-32, layer scale (241.6M params)."""
    return _build("mambavision_l2", "mambavision_l2", pretrained, kwargs)


@register_model
def mambavision_b_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-B, ImageNet-21k pretrained weights."""
    return _build("mambavision_b_21k", "mambavision_b_21k", pretrained, kwargs)


@register_model
def mambavision_l_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L, ImageNet-21k pretrained weights."""
    return _build("mambavision_l_21k", "mambavision_l_21k", pretrained, kwargs)


@register_model
def mambavision_l2_512_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L2 at 512x512 (windows 32 / 16), ImageNet-21k pretrained weights."""
    return _build("mambavision_l2_512_21k", "mambavision_l2_512_21k", pretrained, kwargs)


@register_model
def mambavision_l3_256_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L3: C 256, depths 3/3/20/10, at 256x256 (windows 16 / 8), ImageNet-21k weights."""
    return _build("mambavision_l3_256_21k", "mambavision_l3_256_21k", pretrained, kwargs)


@register_model
def mambavision_l3_512_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L3 at 512x512 (windows 32 / 16), ImageNet-21k pretrained weights."""
    return _build("mambavision_l3_512_21k", "mambavision_l3_512_21k", pretrained, kwargs)


# Official names: aliases of the models above (same cfgs and weights).
register_aliases(__name__, _ALIASES, _build)
