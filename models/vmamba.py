"""VMamba: visual state-space models with a four-direction 2-D selective scan (SS2D).

Paper: `VMamba: Visual State Space Model` - https://arxiv.org/abs/2401.10166
Official code and weights: https://github.com/MzeroMiko/VMamba (MIT license).

A four-stage pyramid (strides 4 / 8 / 16 / 32, widths C, 2C, 4C, 8C). Each block is
``x + DropPath(SS2D(LN(x)))``, then ``x + DropPath(MLP(LN(x)))`` when mlp_ratio > 0.

- v2 models (``vmamba_*_s1l*``, ``vmamba_*_s2l*``): stem of two 3x3 stride-2 convs ("patchembed v2"),
  3x3 stride-2 conv + LayerNorm downsampling ("downsample v3"), d_state 1, no conv bias, no z gate
  (forward type ``v05_noz``), MLP ratio 4. ``sXlY``: ssm_ratio X, Y blocks in stage 3.
- Vanilla v0 models (``vanilla_vmamba_*``): 4x4 stride-4 patch conv stem, Swin patch merging,
  d_state 16, ssm_ratio 2, z gate, conv bias, no MLP.

The official v2 code runs channels first with ``LayerNorm2d``; this one keeps every map channel-last
(batch, H, W, C) between layers, which is the same math with the same parameter shapes. Module names
follow the official ``VSSM``, so official state_dicts load as they are. ``forward_features`` and the
intermediates are NCHW.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, calculate_drop_path_rates, get_device_dtype, trunc_normal_
from timm.models import checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.swin_transformer import PatchMerging

from vssm.norm import LayerNorm
from vssm.ss2d import SS2D
from vssm.timm_glue import TimmModel, build_model, is_symbolic, load_pretrained, record_no_weight_decay

__all__ = ["VMamba", "VSSBlock", "checkpoint_filter_fn"]

_STRIDE = 32  # 4x stem, three 2x downsamples


class NchwToNhwc(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class NhwcToNchw(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def _stem(kind: str, in_chans: int, dim: int, dd: dict) -> nn.Sequential:
    """Image (NCHW) -> stride-4 channel-last map. Indices match the official ``patch_embed`` keys."""
    if kind == "conv3x2":  # official "v2": conv3x3/2 -> LN -> GELU -> conv3x3/2 -> LN
        return nn.Sequential(
            nn.Conv2d(in_chans, dim // 2, kernel_size=3, stride=2, padding=1, **dd),
            NchwToNhwc(),
            LayerNorm(dim // 2, **dd),
            NhwcToNchw(),
            nn.GELU(),
            nn.Conv2d(dim // 2, dim, kernel_size=3, stride=2, padding=1, **dd),
            NchwToNhwc(),
            LayerNorm(dim, **dd),
        )
    if kind == "patch4":  # official "v1": 4x4 stride-4 patch conv -> LN
        return nn.Sequential(
            nn.Conv2d(in_chans, dim, kernel_size=4, stride=4, **dd),
            NchwToNhwc(),
            LayerNorm(dim, **dd),
        )
    raise ValueError(f"VMamba: `stem` must be 'conv3x2' (v2) or 'patch4' (v1), got {kind!r}")


def _downsample(kind: str, dim: int, out_dim: int, dd: dict) -> nn.Module:
    """Channel-last 2x downsample. Indices/names match the official ``layers.{i}.downsample`` keys."""
    if kind == "conv":  # official "v3": conv3x3/2 -> LN
        return nn.Sequential(
            NhwcToNchw(),
            nn.Conv2d(dim, out_dim, kernel_size=3, stride=2, padding=1, **dd),
            NchwToNhwc(),
            LayerNorm(out_dim, **dd),
        )
    if kind == "merge":  # official "v1": Swin patch merging (2x2 neighbours concatenated -> LN -> linear)
        return PatchMerging(dim, out_dim, norm_layer=LayerNorm, **dd)
    raise ValueError(f"VMamba: `downsample` must be 'conv' (v3) or 'merge' (v1), got {kind!r}")


class VSSBlock(nn.Module):
    """``x + DropPath(SS2D(LN(x)))`` then, if mlp_ratio > 0, ``x + DropPath(MLP(LN(x)))``; channel-last."""

    def __init__(
        self,
        dim: int,
        drop_path: float = 0.0,
        mlp_ratio: float = 4.0,
        ssm_kwargs: dict | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        # both norms are read by a Linear alone (in_proj, fc1): under autocast they may write its dtype
        self.norm = LayerNorm(dim, lower_precision_output=True, **dd)
        self.op = SS2D(dim, **(ssm_kwargs or {}), **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if mlp_ratio > 0:
            self.norm2 = LayerNorm(dim, lower_precision_output=True, **dd)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, **dd)
        else:
            self.norm2 = self.mlp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.op(self.norm(x)))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class VMambaStage(nn.Module):
    """Blocks, then the downsample into the next stage (official layout: ``layers.{i}.blocks/downsample``)."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.forward_blocks(x))


class VMambaHead(nn.Module):
    """LN -> global average pool -> dropout -> linear on channel-last maps (official ``classifier``)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.norm = LayerNorm(in_features, device=device, dtype=dtype)
        self.drop = nn.Dropout(drop_rate)
        self.reset(num_classes, global_pool, device=device, dtype=dtype)

    def reset(self, num_classes: int, global_pool: str | None = None, device=None, dtype=None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(
                    f"VMamba: `global_pool` must be 'avg' or '' (no pooling), got {global_pool!r}"
                )
            self.global_pool = global_pool
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"VMamba: `num_classes` must be an int >= 0, got {num_classes!r}")
        self.head = (
            nn.Linear(self.in_features, num_classes, device=device, dtype=dtype)
            if num_classes > 0
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.norm(x)
        if self.global_pool == "avg":
            x = x.mean(dim=(1, 2))
        x = self.drop(x)
        x = x if pre_logits else self.head(x)
        # unpooled maps leave in NCHW, the layout of forward_features and of the cfg's pool_size
        return x if self.global_pool == "avg" else x.permute(0, 3, 1, 2)


class VMamba(TimmModel, nn.Module):
    """VMamba backbone / classifier (the official ``VSSM`` for forward types v05_noz and v0).

    Args:
        in_chans: image channels. num_classes: classes (0: no classifier). global_pool: 'avg' or ''.
        depths: blocks per stage. embed_dim: width of stage 1 (stage i has embed_dim * 2**i).
        d_state, ssm_ratio, dt_rank, d_conv, conv_bias, gate: SS2D settings (see `vssm.ss2d.SS2D`).
        mlp_ratio: MLP hidden ratio after each SS2D (0: no MLP).
        stem: 'conv3x2' (official patchembed v2) or 'patch4' (v1).
        downsample: 'conv' (official downsample v3) or 'merge' (v1, Swin patch merging).
        drop_rate: dropout before the classifier. drop_path_rate: stochastic depth, linear over blocks.
        feature_norms: add one LayerNorm per stage output (``outnorm{i}``, as the official detection
            backbone); ``forward_intermediates(norm=True)`` applies them. Set by ``features_only=True``.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        depths: tuple[int, ...] = (2, 2, 9, 2),
        embed_dim: int = 96,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = True,
        gate: bool = False,
        mlp_ratio: float = 4.0,
        stem: str = "conv3x2",
        downsample: str = "conv",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        feature_norms: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"VMamba: `in_chans` must be a positive int, got {in_chans!r}")
        depths = tuple(depths)
        if not depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(
                f"VMamba: `depths` must be a non-empty sequence of positive ints, got {depths!r}"
            )
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 2:
            raise ValueError(f"VMamba: `embed_dim` must be an int >= 2, got {embed_dim!r}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depths = depths
        self.dims = [embed_dim * 2**i for i in range(len(depths))]
        self.num_features = self.head_hidden_size = self.dims[-1]
        self.feature_norms = bool(feature_norms)
        self.drop_rate = drop_rate

        self.patch_embed = _stem(stem, in_chans, embed_dim, dd)
        ssm_kwargs = dict(
            d_state=d_state,
            ssm_ratio=ssm_ratio,
            dt_rank=dt_rank,
            d_conv=d_conv,
            conv_bias=conv_bias,
            gate=gate,
        )
        dpr = calculate_drop_path_rates(drop_path_rate, sum(depths))
        self.layers = nn.ModuleList()
        self.feature_info = []
        start = 0
        for i, (depth, dim) in enumerate(zip(depths, self.dims)):
            blocks = [
                VSSBlock(dim, drop_path=dpr[start + j], mlp_ratio=mlp_ratio, ssm_kwargs=ssm_kwargs, **dd)
                for j in range(depth)
            ]
            start += depth
            down = _downsample(downsample, dim, self.dims[i + 1], dd) if i < len(depths) - 1 else None
            self.layers.append(VMambaStage(blocks, down))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"layers.{i}.blocks"))
        if self.feature_norms:
            for i, dim in enumerate(self.dims):
                self.add_module(f"outnorm{i}", LayerNorm(dim, **dd))
        self.classifier = VMambaHead(self.dims[-1], num_classes, global_pool, drop_rate, **dd)
        self.apply(self._init_weights)
        record_no_weight_decay(self)  # SS2D marks A_logs and Ds, as the official code exempts them

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # the official init: trunc-normal linears with zero bias, unit LayerNorms; convs keep PyTorch's default
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ----------------------------------------------------------------------------------------- timm API

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^patch_embed",
            blocks=r"^layers\.(\d+)"
            if coarse
            else [
                (r"^layers\.(\d+)\.blocks\.(\d+)", None),
                (r"^layers\.(\d+)\.downsample", (99999,)),  # the downsample closes its stage
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier.head

    def load_pretrained(self, checkpoint_path: str, prefix: str = "") -> None:
        """Load an official release file (``{"model": ..., "config": CfgNode, ...}``): its ``model`` weights
        (not ``model_ema``), strictly; a classifier of another size than ours is left as initialised."""
        load_pretrained(self, checkpoint_path, checkpoint_filter_fn, trusted=_OFFICIAL_CONFIG_GLOBALS, prefix=prefix)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.classifier.reset(num_classes, global_pool, **get_device_dtype(self.classifier.norm))
        self.classifier.head.train(self.training)  # a new head on an eval model stays in eval mode

    def _check_input(self, x: torch.Tensor) -> None:
        if is_symbolic(x):  # torch.fx: no shape to check
            return
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_chans:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"VMamba: input must be (batch, {self.in_chans}, H, W), got {got}")
        height, width = x.shape[-2:]
        if height % _STRIDE or width % _STRIDE or height == 0 or width == 0:
            raise ValueError(
                f"VMamba: input size {height}x{width} (HxW) is not supported: height and width must be "
                f"positive multiples of {_STRIDE} (4x stem, then three 2x downsamples)"
            )

    def _norm_intermediate(self, index: int, x: torch.Tensor) -> torch.Tensor:
        norm = getattr(self, f"outnorm{index}", None)
        if norm is not None:
            return norm(x)
        if index == len(self.depths) - 1:  # without per-stage norms only the last stage has one
            return self.classifier.norm(x)
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
        """Stage outputs before each downsample (strides 4, 8, 16, 32).

        Args:
            indices: stages to return: the last n if int, all if None, else these (negative from the end).
            norm: apply each stage's ``outnorm{i}`` (``feature_norms=True``); without those, the final
                norm to the last stage's output.
            stop_early: skip the stages after the last one requested.
            output_fmt: 'NCHW' or 'NHWC'.
            intermediates_only: return only the list; otherwise (forward_features output, list).
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"VMamba: `output_fmt` must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        self._check_input(x)
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        stages = self.layers[: max_index + 1] if stop_early else self.layers
        intermediates = []
        x = self.patch_embed(x)
        for i, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if i in take_indices:
                y = self._norm_intermediate(i, x) if norm else x
                intermediates.append(y.permute(0, 3, 1, 2) if output_fmt == "NCHW" else y)
            x = stage.downsample(x)
        if intermediates_only:
            return intermediates
        return x.permute(0, 3, 1, 2), intermediates

    def prune_intermediate_layers(
        self,
        indices: int | list[int] | tuple[int, ...] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop what the requested intermediates do not need: later stages, the last kept downsample,
        unused per-stage norms, and (optionally) the classifier and its norm."""
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[: max_index + 1]
        self.layers[-1].downsample = nn.Identity()
        for i in range(len(self.depths)):
            if i not in take_indices and hasattr(self, f"outnorm{i}"):
                delattr(self, f"outnorm{i}")
        if max_index < len(self.depths) - 1:
            self.num_features = self.head_hidden_size = self.dims[max_index]
            prune_head = prune_norm = True  # the classifier is sized for the last stage
        if prune_head:
            self.reset_classifier(0, "")
        if prune_norm or self.feature_norms:
            self.classifier.norm = nn.Identity()
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_chans, H, W) -> last stage map (batch, num_features, H/32, W/32), before the final norm."""
        self._check_input(x)
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return x.permute(0, 3, 1, 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier(x.permute(0, 2, 3, 1), pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ------------------------------------------------------------------------------------------- checkpoints

# names of older official releases -> current ones (the official VSSM._load_from_state_dict renames these)
_LEGACY_RENAMES = (
    (r"^patch_embed\.proj\.", "patch_embed.0."),
    (r"^patch_embed\.norm\.", "patch_embed.2."),
    (r"^(layers\.\d+\.blocks\.\d+)\.ln_1\.", r"\1.norm."),
    (r"^(layers\.\d+\.blocks\.\d+)\.self_attention\.", r"\1.op."),
    (r"^norm\.", "classifier.norm."),
    (r"^head\.", "classifier.head."),
)


# The official trainer pickles its yacs config next to the weights; nothing else in a release file is code.
_OFFICIAL_CONFIG_GLOBALS = ("yacs.config.CfgNode",)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: VMamba) -> dict[str, torch.Tensor]:
    """Official checkpoint (``{"model": state_dict}`` or the bare state_dict) -> this model's state_dict.

    Keys are the official ones already; this unwraps the dict, strips DDP / detection prefixes,
    renames the keys of older releases, and flattens 1x1-conv-shaped linear weights (the official
    ``Linear2d`` accepts both).
    """
    for key in ("model", "state_dict"):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    own = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        for pattern, repl in _LEGACY_RENAMES:
            k = re.sub(pattern, repl, k)
        if k in own and v.shape != own[k].shape and v.numel() == own[k].numel() and v.dim() == 4:
            v = v.reshape(own[k].shape)
        out[k] = v
    return out


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VMamba:
    feature_cfg = dict(out_indices=(0, 1, 2, 3), feature_cls="getter")
    if kwargs.get("features_only", False) and kwargs.get("feature_cls", "getter") == "fx":
        # the graph's stage outputs: channel-last maps, without per-stage norms
        feature_cfg.update(feature_cls="fx", output_fmt="NHWC")
    elif kwargs.get("features_only", False):
        if kwargs.get("feature_cls", "getter") != "getter":
            # hooks would return the stages' channel-last maps, without the per-stage norms (unused parameters)
            raise ValueError(
                f"VMamba: features_only supports feature_cls='getter' (NCHW maps through forward_intermediates) "
                f"or 'fx' (NHWC), got {kwargs['feature_cls']!r}"
            )
        # the official detection backbone normalises every stage output with its own LayerNorm
        kwargs.setdefault("feature_norms", True)
        feature_cfg["norm"] = kwargs["feature_norms"]
    return build_model(
        VMamba,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=feature_cfg,
        **kwargs,
    )


_RELEASES = "https://github.com/MzeroMiko/VMamba/releases/download/"


def _cfg(url: str = "", **kwargs) -> dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.0",
        "classifier": "classifier.head",
        "license": "mit",
        "paper_ids": "arXiv:2401.10166",
        "paper_name": "VMamba: Visual State Space Model",
        "origin_url": "https://github.com/MzeroMiko/VMamba",
        # release files carry the trainer's yacs config: VMamba.load_pretrained reads them (see README)
        "custom_load": bool(url),
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "vmamba_tiny_s1l8.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth"),
        "vmamba_small_s1l20.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm1_small_0229s_ckpt_epoch_240.pth"),
        "vmamba_base_s1l20.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm1_base_0229s_ckpt_epoch_225.pth"),
        "vmamba_tiny_s2l5.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth"),
        "vmamba_small_s2l15.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm_small_0229_ckpt_epoch_222.pth"),
        "vmamba_base_s2l15.in1k": _cfg(url=_RELEASES + "%23v2cls/vssm_base_0229_ckpt_epoch_237.pth"),
        "vanilla_vmamba_tiny.in1k": _cfg(url=_RELEASES + "%23v0cls/vssmtiny_dp01_ckpt_epoch_292.pth"),
        "vanilla_vmamba_small.in1k": _cfg(url=_RELEASES + "%23v0cls/vssmsmall_dp03_ckpt_epoch_238.pth"),
        "vanilla_vmamba_base.in1k": _cfg(url=_RELEASES + "%23v0cls/vssmbase_dp06_ckpt_epoch_241.pth"),
    }
)

# v2 models: official configs vmambav2(v)_*_224.yaml (forward type v05_noz)
_V2 = dict(
    d_state=1,
    dt_rank="auto",
    d_conv=3,
    conv_bias=False,
    gate=False,
    mlp_ratio=4.0,
    stem="conv3x2",
    downsample="conv",
)
# vanilla models: official configs vmambav0_*_224.yaml (forward type v0)
_V0 = dict(
    d_state=16,
    ssm_ratio=2.0,
    dt_rank="auto",
    d_conv=3,
    conv_bias=True,
    gate=True,
    mlp_ratio=0.0,
    stem="patch4",
    downsample="merge",
)


def _entry(variant: str, pretrained: bool, model_args: dict, kwargs: dict) -> VMamba:
    return _create_vmamba(variant, pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_tiny_s1l8(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 8, 2), embed_dim=96, ssm_ratio=1.0, drop_path_rate=0.2)
    return _entry("vmamba_tiny_s1l8", pretrained, args, kwargs)


@register_model
def vmamba_small_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 20, 2), embed_dim=96, ssm_ratio=1.0, drop_path_rate=0.3)
    return _entry("vmamba_small_s1l20", pretrained, args, kwargs)


@register_model
def vmamba_base_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 20, 2), embed_dim=128, ssm_ratio=1.0, drop_path_rate=0.5)
    return _entry("vmamba_base_s1l20", pretrained, args, kwargs)


@register_model
def vmamba_tiny_s2l5(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 5, 2), embed_dim=96, ssm_ratio=2.0, drop_path_rate=0.2)
    return _entry("vmamba_tiny_s2l5", pretrained, args, kwargs)


@register_model
def vmamba_small_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 15, 2), embed_dim=96, ssm_ratio=2.0, drop_path_rate=0.3)
    return _entry("vmamba_small_s2l15", pretrained, args, kwargs)


@register_model
def vmamba_base_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V2, depths=(2, 2, 15, 2), embed_dim=128, ssm_ratio=2.0, drop_path_rate=0.6)
    return _entry("vmamba_base_s2l15", pretrained, args, kwargs)


@register_model
def vanilla_vmamba_tiny(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V0, depths=(2, 2, 9, 2), embed_dim=96, drop_path_rate=0.2)
    return _entry("vanilla_vmamba_tiny", pretrained, args, kwargs)


@register_model
def vanilla_vmamba_small(pretrained: bool = False, **kwargs) -> VMamba:
    args = dict(_V0, depths=(2, 2, 27, 2), embed_dim=96, drop_path_rate=0.3)
    return _entry("vanilla_vmamba_small", pretrained, args, kwargs)


@register_model
def vanilla_vmamba_base(pretrained: bool = False, **kwargs) -> VMamba:
    # 0.6 as the official builder and the released checkpoint (vssmbase_dp06); the yaml says 0.5
    args = dict(_V0, depths=(2, 2, 27, 2), embed_dim=128, drop_path_rate=0.6)
    return _entry("vanilla_vmamba_base", pretrained, args, kwargs)
