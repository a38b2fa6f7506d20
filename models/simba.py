"""SiMBA: Mamba token mixer + EinFFT (or MLP) channel mixer in a four-stage pyramid.

Paper: "SiMBA: Simplified Mamba-based Architecture for Vision and Multivariate Time series",
Patro & Agneeswaran, arXiv 2403.15360. Released code: badripatro/simba (`classification/simba.py`).

Architecture, as released:
- Stem (stride 4): conv7x7/s2 + BN + ReLU, two conv3x3 + BN + ReLU, conv3x3/s2, LayerNorm.
- Stages 2-4 start with a conv3x3/s2 + LayerNorm downsample.
- Block: ``x = x + DropPath(Mamba(LN(x)))``; ``x = x + DropPath(ChannelMixer(LN(x)))``, where the channel mixer
  is EinFFT (`vssm.einfft.EinFFT`; the paper's main models) or an MLP with a 3x3 depthwise conv between its
  two linears (the released code's default). Mamba: d_state 64, expand 2, d_conv 4, one direction.
- Stages 1-3 end with a LayerNorm; stage 4 does not.
- Class block: a class token (the mean of the stage-4 tokens) passes through its own Mamba mixer (which sees
  only that one token) and channel mixer (EinFFT, or a plain MLP); then a final LayerNorm over all tokens.
- Head: a linear classifier on the class token plus, by default, the token-labelling auxiliary head
  (a linear classifier on every patch token whose max over tokens, times 0.5, is added to the logits:
  the released code's inference output). Mix-token training (token labelling) is not implemented.

Directions: the paper's text describes a forward and a backward scan, but its parameter table matches
the released one-direction mixer; registered models follow the table. ``bidirectional=True`` builds every
Mamba mixer with Vim's two-direction scan (second branch with its own parameters, outputs averaged).

Initialisation follows the released code: LayerNorm 1/0, Linear trunc-normal(0.02) with zero bias, Conv2d
normal(0, sqrt(2 / fan_out)) with zero bias, EinFFT weights normal(0.02). As released, the Linear rule also
re-initialises the Mamba projections (so softplus(dt_proj.bias) starts at softplus(0) ~ 0.69); A_log, D and
the depthwise Conv1d keep Mamba's own init.

Input sizes: any height and width. Every stride-2 conv pads by its half-kernel, so the four stage maps are
ceil(H / 4), ceil(H / 8), ceil(H / 16), ceil(H / 32) (likewise for W); neither square nor multiple-of-32
inputs are required.

Parameter counts (1000 classes; stem, all stages, class block, final norm, classifier head and the
token-labelling auxiliary head, i.e. everything `SiMBA(...)` builds with its defaults):

| model | params | paper |
|---|---|---|
| simba_s (EinFFT) | 15.31M | 15.3M |
| simba_b (EinFFT) | 22.82M | 22.8M |
| simba_l (EinFFT) | 36.64M | 36.6M |
| simba_s_mlp | 26.59M | 26.5M |
| simba_b_mlp | 40.21M | 40.0M |
| simba_l_mlp | 66.76M | - |

Without the auxiliary head (``use_aux_head=False``) subtract 1001 x the last width (0.45M for S, 0.51M for
B and L). ``bidirectional=True`` adds 2.13M / 3.21M / 5.13M (S / B / L): +14% on the EinFFT models, +8% on
the MLP ones, which is why the table's counts point to the one-direction mixer.

FLOPs at 224x224 (`vssm.flops.count_flops`: multiply-adds, the scan as 9*B*L*D*N + B*D*L, an n-point FFT
as 2.5 * log2(n) per point):

| model | GFLOPs | of which conv + linear | paper |
|---|---|---|---|
| simba_s | 4.70 | 2.45 | 2.4 |
| simba_b | 7.16 | 4.18 | 4.2 (5.2 in another version) |
| simba_l | 13.16 | 7.56 | 7.6 (9.6 in another version) |
| simba_s_mlp | 6.86 | 5.17 | 5.0 |
| simba_b_mlp | 10.10 | 7.96 | 9.0 |

The paper's S / B / L figures (2.4 / 4.2 / 7.6G) equal the conv + linear part alone: a module-hook counter
that sees neither the selective scan (1.67G of S, with d_state 64) nor the EinFFT contractions and FFTs.
Its MLP figures are near that part too (5.0 vs 5.17, 9.0 vs 7.96).

Released training recipe (its README): 310 epochs, token labelling (dense labels from an EfficientNet-L2),
AdamW lr 1e-3 at batch 8 x 128, weight decay 0.05, drop-path 0.05.

No official weights exist. Checkpoints of the released code (its parameter names, ``{"model": state_dict}`` or
a bare state_dict) load through ``pretrained_cfg_overlay=dict(file=...)``: into the ``_mlp`` variants (the
released default), and into the EinFFT ones when the released code was switched to its EinFFT mixer;
`checkpoint_filter_fn` renames the keys.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, calculate_drop_path_rates, get_device_dtype, trunc_normal_
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.pvt_v2 import MlpWithDepthwiseConv

from vssm.einfft import EinFFT
from vssm.mamba import Mamba
from vssm.memory_format import run_in_maps_layout
from vssm.norm import LayerNorm
from vssm.timm_glue import (
    TimmModel,
    build_model,
    fx_leaf,
    is_symbolic,
    load_pretrained,
    record_no_weight_decay,
)

__all__ = ["SiMBA", "SiMBABlock", "ClassBlock", "checkpoint_filter_fn"]

def _simba_norm(*args, **kwargs) -> LayerNorm:
    """SiMBA's LayerNorms take the fused op at every size under ``VSSM_FUSED_LN=auto``: its training step is
    bound by the GPU throughout (H200, bf16, batch 128: ~560 ms per step). In three e2e runs it did 1298 / 234
    img/s (inference / training) with the fused op on every norm, 1212 / 229 and 1210 / 229 with F.layer_norm
    (`docs/bench/h200-2026-11-30-s17`, `-s18`, `h200-2026-11-29-s16`: three hosts)."""
    return LayerNorm(*args, fused_min_numel=0, **kwargs)


_CHANNEL_MIXERS = ("einfft", "mlp")
_GLOBAL_POOLS = ("", "avg", "token")


# EinFFT checks its input's shape and picks the FFT dtype from it: a leaf of torch.fx graphs, as the mixers
fx_leaf(EinFFT)


def _check_pool(global_pool: str, has_class_token: bool) -> None:
    if global_pool not in _GLOBAL_POOLS:
        raise ValueError(f"SiMBA: `global_pool` must be one of {_GLOBAL_POOLS}, got {global_pool!r}")
    if global_pool == "token" and not has_class_token:
        raise ValueError("SiMBA: `global_pool`='token' needs the class block, which has been pruned")


class Stem(nn.Module):
    """conv7x7/s2-BN-ReLU, 2x (conv3x3-BN-ReLU), conv3x3/s2, LayerNorm: NCHW image -> NHWC tokens at stride 4."""

    # on CUDA the convs run on maps stored channels_last (`vssm.memory_format`), and proj's output is then the NHWC
    # tokens without a copy. False keeps the input's layout
    channels_last: bool = True

    def __init__(self, in_chans: int, hidden_dim: int, out_dim: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv = nn.Sequential(
            nn.Conv2d(in_chans, hidden_dim, 7, stride=2, padding=3, bias=False, **dd),
            nn.BatchNorm2d(hidden_dim, **dd),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, bias=False, **dd),
            nn.BatchNorm2d(hidden_dim, **dd),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, bias=False, **dd),
            nn.BatchNorm2d(hidden_dim, **dd),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Conv2d(hidden_dim, out_dim, 3, stride=2, padding=1, **dd)
        self.norm = _simba_norm(out_dim, **dd)  # eps 1e-5 here (released), 1e-6 in the blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(run_in_maps_layout(self.conv, x, self.channels_last)).permute(0, 2, 3, 1))


class Downsample(nn.Module):
    """conv3x3/s2 + LayerNorm on NHWC maps."""

    def __init__(self, in_dim: int, out_dim: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.proj = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1, **dd)
        self.norm = _simba_norm(out_dim, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


def _mamba(dim: int, mamba_cfg: dict[str, Any], dd: dict) -> Mamba:
    return Mamba(dim, **mamba_cfg, **dd)


class SiMBABlock(nn.Module):
    """Mamba token mixer then EinFFT / depthwise-conv MLP channel mixer, both pre-norm residual."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        channel_mixer: str,
        mamba_cfg: dict[str, Any],
        drop_path: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        # eps 1e-5: the released mixer wrapper's own norm; read by the mixer's in_proj alone
        self.norm1 = _simba_norm(dim, lower_precision_output=True, **dd)
        self.mixer = _mamba(dim, mamba_cfg, dd)
        self.norm2 = _simba_norm(dim, eps=1e-6, **dd)
        self.uses_size = channel_mixer == "mlp"
        if channel_mixer == "einfft":
            self.mlp = EinFFT(dim, **dd)
        else:
            self.mlp = MlpWithDepthwiseConv(dim, int(dim * mlp_ratio), **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        """x: (batch, H*W, dim) tokens in row-major order of the (H, W) = feat_size map."""
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        y = self.norm2(x)
        y = self.mlp(y, feat_size) if self.uses_size else self.mlp(y)
        return x + self.drop_path(y)


class ClassBlock(nn.Module):
    """SiMBA's class block: updates token 0 only (mixer and channel mixer see that single token)."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        channel_mixer: str,
        mamba_cfg: dict[str, Any],
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.norm1 = _simba_norm(dim, lower_precision_output=True, **dd)  # read by the mixer's in_proj alone
        self.mixer = _mamba(dim, mamba_cfg, dd)
        self.norm2 = _simba_norm(dim, eps=1e-6, **dd)
        if channel_mixer == "einfft":
            self.mlp = EinFFT(dim, **dd)
        else:
            self.mlp = Mlp(dim, int(dim * mlp_ratio), **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 1 + L, dim) with the class token first -> same shape."""
        cls = x[:, :1]
        cls = cls + self.mixer(self.norm1(cls))
        cls = cls + self.mlp(self.norm2(cls))
        return torch.cat([cls, x[:, 1:]], dim=1)


class SiMBAStage(nn.Module):
    """Optional downsample, blocks, optional output norm; NHWC in and out."""

    def __init__(
        self,
        in_dim: int,
        dim: int,
        depth: int,
        mlp_ratio: float,
        channel_mixer: str,
        mamba_cfg: dict[str, Any],
        drop_path: list[float],
        downsample: bool,
        out_norm: bool,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.grad_checkpointing = False
        self.downsample = Downsample(in_dim, dim, **dd) if downsample else nn.Identity()
        self.blocks = nn.ModuleList(
            [SiMBABlock(dim, mlp_ratio, channel_mixer, mamba_cfg, drop_path[j], **dd) for j in range(depth)]
        )
        self.norm = _simba_norm(dim, eps=1e-6, **dd) if out_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        batch, H, W, C = x.shape
        x = x.reshape(batch, H * W, C)
        for blk in self.blocks:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(blk, x, (H, W))
            else:
                x = blk(x, (H, W))
        return self.norm(x).reshape(batch, H, W, C)


class SiMBA(TimmModel, nn.Module):
    """SiMBA backbone (see the module docstring for the architecture and what parameter counts include).

    Args:
        in_chans: image channels.
        num_classes: classifier outputs (0: no classifier, no auxiliary head).
        global_pool: ``"token"`` (class token, default), ``"avg"`` (mean of the patch tokens) or ``""``.
        stem_hidden_dim: width of the stem's stride-2 convs.
        embed_dims, depths, mlp_ratios: per-stage width, number of blocks, MLP hidden ratio (MLP mixer
            and class-block MLP only).
        channel_mixer: ``"einfft"`` or ``"mlp"``.
        d_state, d_conv, expand: Mamba mixer settings (64, 4, 2 in SiMBA).
        bidirectional: two-direction Mamba mixers (the paper's text) instead of one (released, paper's table).
        use_aux_head: token-labelling auxiliary head (released default; counted in the paper's table).
        drop_rate: dropout before the classifier; drop_path_rate: stochastic depth, linear over all blocks.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        stem_hidden_dim: int = 32,
        embed_dims: tuple[int, ...] = (64, 128, 320, 448),
        depths: tuple[int, ...] = (3, 4, 6, 3),
        mlp_ratios: tuple[float, ...] = (8, 8, 4, 4),
        channel_mixer: str = "einfft",
        d_state: int = 64,
        d_conv: int = 4,
        expand: int = 2,
        bidirectional: bool = False,
        use_aux_head: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if channel_mixer not in _CHANNEL_MIXERS:
            raise ValueError(
                f"SiMBA: `channel_mixer` must be one of {_CHANNEL_MIXERS}, got {channel_mixer!r}"
            )
        embed_dims, depths, mlp_ratios = tuple(embed_dims), tuple(depths), tuple(mlp_ratios)
        if not (len(embed_dims) == len(depths) == len(mlp_ratios)) or not depths:
            raise ValueError(
                "SiMBA: `embed_dims`, `depths` and `mlp_ratios` must be non-empty and of equal length, got "
                f"{len(embed_dims)}, {len(depths)}, {len(mlp_ratios)}"
            )
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f"SiMBA: `depths` must be positive ints, got {depths}")
        _check_pool(global_pool, True)
        if not isinstance(bidirectional, bool):
            raise TypeError(f"SiMBA: `bidirectional` must be a bool, got {type(bidirectional).__name__}")

        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.channel_mixer = channel_mixer
        self.use_aux_head = use_aux_head
        self.num_features = self.head_hidden_size = embed_dims[-1]
        mamba_cfg = dict(d_state=d_state, d_conv=d_conv, expand=expand, bidirectional=bidirectional)

        self.stem = Stem(in_chans, stem_hidden_dim, embed_dims[0], **dd)
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=False)
        self.feature_info = []
        stages = []
        start, in_dim = 0, embed_dims[0]
        for i, (dim, depth, ratio) in enumerate(zip(embed_dims, depths, mlp_ratios)):
            stages.append(
                SiMBAStage(
                    in_dim,
                    dim,
                    depth,
                    ratio,
                    channel_mixer,
                    mamba_cfg,
                    dpr[start : start + depth],
                    downsample=i > 0,
                    out_norm=i < len(depths) - 1,
                    **dd,
                )
            )
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"stages.{i}"))
            start, in_dim = start + depth, dim
        self.stages = nn.Sequential(*stages)

        self.class_block = ClassBlock(embed_dims[-1], mlp_ratios[-1], channel_mixer, mamba_cfg, **dd)
        self.norm = _simba_norm(embed_dims[-1], eps=1e-6, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.aux_head = (
            nn.Linear(self.num_features, num_classes, **dd) if use_aux_head and num_classes > 0 else None
        )

        self.apply(self._init_weights)
        record_no_weight_decay(self)  # Mamba marks A_log and D

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------------------------
    # timm model API

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=[(r"^stages\.(\d+)", None), (r"^class_block|^norm", (99999,))]
            if coarse
            else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^stages\.(\d+)\.norm", (99999,)),
                (r"^class_block|^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        dd = get_device_dtype(self)
        if global_pool is not None:
            _check_pool(global_pool, self.class_block is not None)
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)
        if self.use_aux_head and num_classes > 0:
            self.aux_head = nn.Linear(self.num_features, num_classes, **dd)
            self.aux_head.train(self.training)
        else:
            self.aux_head = None

    def _forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Last-stage NHWC map -> (batch, 1 + L, C) tokens with the class token first, normed."""
        x = x.flatten(1, 2)
        if self.class_block is not None:
            x = self.class_block(torch.cat([x.mean(dim=1, keepdim=True), x], dim=1))
        return self.norm(x)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        if is_symbolic(x):  # torch.fx: no shape to check
            return self.stem(x)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_chans:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"SiMBA: input must be (batch, {self.in_chans}, H, W), got {got}")
        return self.stem(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_chans, H, W) -> (batch, 1 + L, C): class token, then the ceil(H/32) x ceil(W/32) tokens."""
        x = self._stem(x)
        x = self.stages(x)
        return self._forward_tokens(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        prefix = 1 if self.class_block is not None else 0
        if self.global_pool == "token":
            out = x[:, 0]
        elif self.global_pool == "avg":
            out = x[:, prefix:].mean(dim=1)
        else:
            out = x
        out = self.head_drop(out)
        if pre_logits:
            return out
        out = self.head(out)
        if self.aux_head is not None and self.global_pool:
            # token labelling: the best patch-token prediction per class, at half weight (released inference)
            out = out + 0.5 * self.aux_head(self.head_drop(x[:, prefix:])).amax(dim=1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs (strides 4, 8, 16, 32) and, unless `intermediates_only`, the forward_features output.

        Stages 1-3 end with their own LayerNorm (as released, the norm whose output feeds the next stage);
        ``norm=True`` also applies the final norm to the stage-4 map. `indices`: last n stages if int, all if
        None, else the listed stages.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"SiMBA: `output_fmt` must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last = len(self.stages) - 1
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[: max_index + 1]
        intermediates = []
        x = self._stem(x)
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                y = self.norm(x) if norm and i == last else x
                intermediates.append(y.permute(0, 3, 1, 2) if output_fmt == "NCHW" else y)
        if intermediates_only:
            return intermediates
        if len(stages) == len(self.stages):
            x = self._forward_tokens(x)
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last wanted one; with the head go the class block and auxiliary head."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[: max_index + 1]
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
            prune_norm = True  # the final norm is sized for the last stage
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head or prune_end:
            self.class_block = None
            self.use_aux_head = False
            self.reset_classifier(0, "")
        return take_indices

    @torch.jit.ignore
    def load_pretrained(self, checkpoint_path: str, prefix: str = "") -> None:
        """Load a checkpoint of the released code (its names, ``{"model": ...}`` or bare) weights-only."""
        load_pretrained(self, checkpoint_path, checkpoint_filter_fn, prefix=prefix)


# ----------------------------------------------------------------------------------------------
# checkpoints of the released code

_RELEASED_RENAMES = (
    # (released-name regex, our name); applied in order to each key, first match wins
    (r"^patch_embed1\.", "stem."),
    (r"^patch_embed(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.downsample."),
    (r"^block(\d+)\.(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}."),
    (r"^post_network\.0\.", "class_block."),
)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: SiMBA) -> dict[str, torch.Tensor]:
    """Rename a released-code state_dict (``{"model": ...}`` or bare) to this module's names.

    Released -> here: patch_embed1 -> stem, patch_embed{i} -> stages.{i-1}.downsample, block{i}.{j} ->
    stages.{i-1}.blocks.{j} (attn.norm -> norm1, attn.mamba -> mixer, mlp.dwconv.dwconv -> mlp.dwconv,
    mlp.complex_weight_k / complex_bias_k -> mlp.weightk / biask), norm{i} -> stages.{i-1}.norm for the first
    stages and norm{last} -> norm, post_network.0 -> class_block. A state_dict already in this layout passes
    unchanged; aux_head weights are dropped when the model has no auxiliary head.
    """
    for key in ("model", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
    num_stages = len(model.feature_info)
    out = {}
    for k, v in state_dict.items():
        k = k.removeprefix("module.")
        m = re.match(r"^norm(\d+)\.(.*)$", k)
        if m:
            i = int(m.group(1))
            k = f"norm.{m.group(2)}" if i == num_stages else f"stages.{i - 1}.norm.{m.group(2)}"
        for pattern, repl in _RELEASED_RENAMES:
            new = re.sub(pattern, repl, k)
            if new != k:
                k = new
                break
        k = k.replace(".attn.norm.", ".norm1.").replace(".attn.mamba.", ".mixer.")
        k = k.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")
        k = re.sub(r"\.mlp\.complex_(weight|bias)_(\d)$", r".mlp.\1\2", k)
        if k.startswith("aux_head.") and model.aux_head is None:
            continue
        out[k] = v
    return out


# ----------------------------------------------------------------------------------------------
# registration


def _create_simba(variant: str, pretrained: bool = False, **kwargs: Any) -> SiMBA:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    feature_cfg = dict(out_indices=out_indices, feature_cls="getter")
    if kwargs.get("features_only", False) and kwargs.get("feature_cls", "getter") == "fx":
        feature_cfg.update(feature_cls="fx", output_fmt="NHWC")  # the graph's stage outputs are channel-last
    return build_model(
        SiMBA,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=feature_cfg,
        **kwargs,
    )


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),  # the stride-32 map at 224 that the head pools
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv.0",
        "classifier": ("head", "aux_head"),
        "paper_ids": "arXiv:2403.15360",
        "paper_name": "SiMBA: Simplified Mamba-based Architecture for Vision and Multivariate Time series",
        "origin_url": "https://github.com/badripatro/simba",
        "notes": (
            "No official weights exist (the released repository ships none and has no license file); "
            "load a checkpoint with pretrained_cfg_overlay=dict(file=...).",
        ),
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "simba_s": _cfg(),
        "simba_b": _cfg(),
        "simba_l": _cfg(),
        "simba_s_mlp": _cfg(),
        "simba_b_mlp": _cfg(),
        "simba_l_mlp": _cfg(),
    }
)

_S = dict(stem_hidden_dim=32, embed_dims=(64, 128, 320, 448), depths=(3, 4, 6, 3), mlp_ratios=(8, 8, 4, 4))
_B = dict(stem_hidden_dim=64, embed_dims=(64, 128, 320, 512), depths=(3, 4, 12, 3), mlp_ratios=(8, 8, 4, 4))
_L = dict(stem_hidden_dim=64, embed_dims=(96, 192, 384, 512), depths=(3, 6, 18, 3), mlp_ratios=(8, 8, 4, 4))


@register_model
def simba_s(pretrained: bool = False, **kwargs: Any) -> SiMBA:
    """SiMBA-S, EinFFT channel mixer (15.3M)."""
    return _create_simba("simba_s", pretrained, **{**_S, "channel_mixer": "einfft", **kwargs})


@register_model
def simba_b(pretrained: bool = False, **kwargs: Any) -> SiMBA:
    """SiMBA-B, EinFFT channel mixer (22.8M)."""
    return _create_simba("simba_b", pretrained, **{**_B, "channel_mixer": "einfft", **kwargs})


@register_model
def simba_l(pretrained: bool = False, **kwargs: Any) -> SiMBA:
    """SiMBA-L, EinFFT channel mixer (36.6M)."""
    return _create_simba("simba_l", pretrained, **{**_L, "channel_mixer": "einfft", **kwargs})


@register_model
def simba_s_mlp(pretrained: bool = False, **kwargs: Any) -> SiMBA:
    """SiMBA-S, depthwise-conv MLP channel mixer (26.6M; the released code's default)."""
    return _create_simba("simba_s_mlp", pretrained, **{**_S, "channel_mixer": "mlp", **kwargs})


@register_model
def simba_b_mlp(pretrained: bool = False, **kwargs: Any) -> SiMBA:
    """SiMBA-B, depthwise-conv MLP channel mixer (40.2M)."""
    return _create_simba("simba_b_mlp", pretrained, **{**_B, "channel_mixer": "mlp", **kwargs})


@register_model
def simba_l_mlp(pretrained: bool = False, **kwargs: Any) -> SiMBA:
    """SiMBA-L, depthwise-conv MLP channel mixer (66.8M; not in the paper's table)."""
    return _create_simba("simba_l_mlp", pretrained, **{**_L, "channel_mixer": "mlp", **kwargs})
