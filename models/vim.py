"""Vision Mamba (Vim) for timm: the official architecture of hustvl/Vim ("bimamba v2", middle class token).

Paper: "Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model",
Zhu et al., arXiv:2401.09417. Official code and weights: https://github.com/hustvl/Vim (Apache-2.0).

The network: a conv patch embedding (kernel 16, stride 16 or 8), a class token inserted in the middle
of the patch sequence (index M // 2 of M patches), an absolute position embedding, 24 pre-norm residual
blocks ``x = x + DropPath(Mamba(RMSNorm(x)))`` with a bidirectional mixer (`vssm.mamba.Mamba`), a
final RMSNorm, and a linear head on the middle token. The residual stream is kept in float32.

The official code writes the blocks as "add, then norm" and returns (mixer output, residual) pairs;
that is the same computation as the pre-norm form used here (block i's output is added with drop-path
rate linspace(0, rate, depth)[i] in both), and both have the same parameters, so official state_dicts
load unchanged (``{"model": state_dict}`` checkpoints through `checkpoint_filter_fn`).
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import (
    DropPath,
    RmsNorm,
    get_device_dtype,
    lecun_normal_,
    to_2tuple,
    trunc_normal_,
)
from timm.models import checkpoint, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from vssm.mamba import Mamba
from vssm.norm import LinearInputRmsNorm
from vssm.timm_glue import (
    TimmModel,
    alias_cfgs,
    build_model,
    is_symbolic,
    load_pretrained,
    mark_no_weight_decay,
    record_no_weight_decay,
    register_aliases,
)

__all__ = ["VisionMamba", "VimBlock", "VimPatchEmbed", "checkpoint_filter_fn", "resample_vim_pos_embed"]


def _size2(name: str, value) -> Tuple[int, int]:
    size = to_2tuple(value)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"VisionMamba: `{name}` must be a positive int or a pair of them, got {value!r}")
    return tuple(size)


class VimPatchEmbed(nn.Module):
    """Conv patch embedding with a stride that may be smaller than the patch (Vim's stride-8 variants).

    Returns tokens in NHWC layout; the grid for an H x W image is ((H - p) // s + 1, (W - p) // s + 1).
    """

    def __init__(
        self,
        img_size: Union[int, Tuple[int, int]] = 224,
        patch_size: Union[int, Tuple[int, int]] = 16,
        stride: Union[int, Tuple[int, int], None] = None,
        in_chans: int = 3,
        embed_dim: int = 192,
        strict_img_size: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.patch_size = _size2("patch_size", patch_size)
        self.stride = _size2("stride", self.patch_size if stride is None else stride)
        if any(s > p for s, p in zip(self.stride, self.patch_size)):
            raise ValueError(
                f"VisionMamba: `stride` {self.stride} must not exceed `patch_size` {self.patch_size}"
            )
        self.strict_img_size = strict_img_size
        self.proj = nn.Conv2d(
            in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride, device=device, dtype=dtype
        )
        self.set_input_size(img_size)

    def set_input_size(self, img_size: Union[int, Tuple[int, int]]) -> None:
        self.img_size = _size2("img_size", img_size)
        self.grid_size = self.dynamic_feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feat_ratio(self) -> Tuple[int, int]:
        return self.stride

    def dynamic_feat_size(self, img_size: Tuple[int, int]) -> Tuple[int, int]:
        """Token grid for an image size, or ValueError naming the size and the rule it breaks."""
        (H, W), (ph, pw), (sh, sw) = img_size, self.patch_size, self.stride
        if H < ph or W < pw or (H - ph) % sh or (W - pw) % sw:
            raise ValueError(
                f"VisionMamba: image size {H}x{W} is not accepted: height and width must be at least the patch "
                f"size {ph}x{pw} and (size - patch) must be a multiple of the stride {sh}x{sw}"
                + (" (with stride == patch: multiples of the patch size)" if (sh, sw) == (ph, pw) else "")
            )
        return (H - ph) // sh + 1, (W - pw) // sw + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_symbolic(x):  # torch.fx: no shape to check
            self._check_input(x)
        p = self.proj
        # a plain conv without hooks (a parametrized, hooked or subclassed one runs as itself)
        if (type(p) is nn.Conv2d and not (p._forward_hooks or p._forward_pre_hooks) and self.stride == self.patch_size
                and p.padding == (0, 0) and p.dilation == (1, 1) and p.groups == 1):
            return patch_tokens(x, p.weight, p.bias, self.patch_size)
        return p(x).permute(0, 2, 3, 1)

    def _check_input(self, x: torch.Tensor) -> None:
        chans = self.proj.in_channels
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != chans:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"VisionMamba: input must be (batch, {chans}, H, W), got {got}")
        H, W = x.shape[-2:]
        if self.strict_img_size and (H, W) != self.img_size:
            raise ValueError(
                f"VisionMamba: image size {H}x{W} does not match the model's {self.img_size[0]}x{self.img_size[1]}; "
                "build the model with dynamic_img_size=True (or img_size=...) to use other sizes"
            )
        self.dynamic_feat_size((H, W))  # raises on sizes the grid can't tile


def patch_tokens(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 patch: Tuple[int, int]) -> torch.Tensor:
    """The patch conv with stride == kernel as one matmul: x (B, C, H, W) cut into its (H / ph) x (W / pw) patches,
    each flattened in the conv weight's (C, ph, pw) order, times the weight seen as (E, C ph pw) -> (B, H / ph, W / pw,
    E). The same products as the conv, summed in another order. Under autocast x is cast to the autocast dtype
    before the patches are cut (the conv and the matmul compute in it either way), so that copy moves half the
    bytes. Why: cuDNN ran Vim's patch conv as `implicit_convolve_sgemm`, 0.80 ms of a 23.2 ms inference step of
    Vim-Ti at 1248 (batch 8, bf16, H200; docs/bench/h200-2026-12-01-s30). A leaf of torch.fx graphs (it reads shapes)."""
    B, C, H, W = x.shape
    ph, pw = patch
    dev = x.device.type
    if x.dtype == torch.float32 and dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev):
        x = x.to(torch.get_autocast_dtype(dev))  # (other device types: the matmul's own autocast, if any)
    x = x.reshape(B, C, H // ph, ph, W // pw, pw).permute(0, 2, 4, 1, 3, 5).reshape(B, H // ph, W // pw, C * ph * pw)
    return F.linear(x, weight.reshape(weight.shape[0], -1), bias)


torch.fx.wrap("patch_tokens")


def resample_vim_pos_embed(
    pos_embed: torch.Tensor,
    new_size: Tuple[int, int],
    old_size: Tuple[int, int],
    interpolation: str = "bicubic",
    antialias: bool = True,
) -> torch.Tensor:
    """Resample a (1, M + 1, C) position embedding whose class entry sits at index M // 2 (Vim's middle token).

    The grid entries are interpolated as an image; the class entry is copied unchanged to the new middle.
    """
    old_m = old_size[0] * old_size[1]
    if pos_embed.dim() != 3 or pos_embed.shape[1] != old_m + 1:
        raise ValueError(
            f"resample_vim_pos_embed: `pos_embed` has shape {tuple(pos_embed.shape)}, expected (1, {old_m + 1}, C) "
            f"for a {old_size[0]}x{old_size[1]} grid plus the class token"
        )
    if tuple(new_size) == tuple(old_size):
        return pos_embed
    return _resample_mid_cls(pos_embed, new_size, old_size, interpolation, antialias)


def _resample_mid_cls(
    pos_embed: torch.Tensor,
    new_size: Tuple[int, int],
    old_size: Tuple[int, int],
    interpolation: str = "bicubic",
    antialias: bool = True,
) -> torch.Tensor:
    """`resample_vim_pos_embed` without its checks or same-size shortcut, so that the new size may be
    symbolic (torch.export with dynamic height and width); at the same size it is the identity."""
    mid = (old_size[0] * old_size[1]) // 2
    dtype, C = pos_embed.dtype, pos_embed.shape[-1]
    cls = pos_embed[:, mid : mid + 1]
    grid = torch.cat([pos_embed[:, :mid], pos_embed[:, mid + 1 :]], dim=1).float()
    grid = grid.reshape(1, old_size[0], old_size[1], C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_size, mode=interpolation, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, C).to(dtype)
    mid = (new_size[0] * new_size[1]) // 2
    return torch.cat([grid[:, :mid], cls, grid[:, mid:]], dim=1)


def embed_tokens(
    x: torch.Tensor, cls_token: torch.Tensor, pos_embed: torch.Tensor, grid_size: Tuple[int, int], dynamic: bool
) -> torch.Tensor:
    """Patch tokens (batch, H, W, C) -> (batch, H * W + 1, C): the class token inserted at index H * W // 2
    and the position embedding (of the native `grid_size`, resampled to H x W when `dynamic`) added.

    A leaf of torch.fx graphs (the sizes it branches on are only known when it runs)."""
    B, H, W, C = x.shape
    x = x.reshape(B, H * W, C)
    if dynamic:  # always resampled (the identity at the native size): no branch on a symbolic size
        pos_embed = _resample_mid_cls(pos_embed, (H, W), grid_size)
    elif (H, W) != tuple(grid_size):
        pos_embed = resample_vim_pos_embed(pos_embed, (H, W), grid_size)
    mid = (H * W) // 2
    x = torch.cat([x[:, :mid], cls_token.expand(B, -1, -1).to(x.dtype), x[:, mid:]], dim=1)
    return x + pos_embed


torch.fx.wrap("embed_tokens")


def residual_in_fp32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision x in float32 (the official residual_in_fp32: the stream never rounds to a half dtype).
    A leaf of torch.fx graphs (it branches on the dtype)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


torch.fx.wrap("residual_in_fp32")


class VimBlock(nn.Module):
    """``x + DropPath(mixer(norm(x)))`` with the residual stream in float32 (names as official)."""

    def __init__(
        self,
        dim: int,
        d_state: int = 16,
        expand: int = 2,
        drop_path: float = 0.0,
        norm_eps: float = 1e-5,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.mixer = Mamba(dim, d_state=d_state, expand=expand, bidirectional=True, **dd)
        # its output is read by the mixer's in_proj only: in the dtype that Linear computes in
        self.norm = LinearInputRmsNorm(dim, eps=norm_eps, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = residual_in_fp32(x)
        # normalized in the stream's precision, handed to the mixer in the block's own dtype (autocast's under it)
        m = self.mixer
        if ((not self.training or isinstance(self.drop_path, nn.Identity)) and not is_symbolic(x)
                and not (m._forward_hooks or m._forward_pre_hooks)):
            # the mixer adds the stream itself (inference on CUDA: inside its out_proj's matmul, `Mamba._residual_out`);
            # not where a hook or a traced graph sees the mixer's own output
            return m(self.norm(x), residual=x)
        return x + self.drop_path(m(self.norm(x)))


class VisionMamba(TimmModel, nn.Module):
    """Vision Mamba (Vim) with a middle class token.

    Args:
        img_size, patch_size, stride: input size, patch (conv kernel) and its stride (16, or 8 for the
            "stride8" variants); ``stride=None`` means stride == patch_size.
        in_chans, num_classes: input channels and classifier classes (0 = no classifier).
        global_pool: ``"token"`` (the middle class token, official), ``"avg"`` (mean of patch tokens)
            or ``""`` (no pooling).
        embed_dim, depth, d_state, expand: width, number of blocks, SSM state size, mixer expansion.
        drop_rate: dropout before the classifier; pos_drop_rate: dropout after the position embedding
            (the official code's ``drop_rate``); drop_path_rate: stochastic depth, linear over blocks.
        norm_eps: RMSNorm epsilon.
        dynamic_img_size: accept any image size the patch grid can tile (position embedding resampled).
        weight_init: ``""`` official init, ``"skip"`` leave modules' own init.
    """

    def __init__(
        self,
        img_size: Union[int, Tuple[int, int]] = 224,
        patch_size: Union[int, Tuple[int, int]] = 16,
        stride: Union[int, Tuple[int, int], None] = None,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        embed_dim: int = 192,
        depth: int = 24,
        d_state: int = 16,
        expand: int = 2,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-5,
        dynamic_img_size: bool = False,
        weight_init: str = "",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if global_pool not in ("token", "avg", ""):
            raise ValueError(f"VisionMamba: `global_pool` must be 'token', 'avg' or '', got {global_pool!r}")
        if weight_init not in ("", "skip"):
            raise ValueError(f"VisionMamba: `weight_init` must be '' or 'skip', got {weight_init!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"VisionMamba: `depth` must be a positive int, got {depth!r}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.dynamic_img_size = dynamic_img_size
        self.grad_checkpointing = False

        self.patch_embed = VimPatchEmbed(
            img_size, patch_size, stride, in_chans, embed_dim, strict_img_size=not dynamic_img_size, **dd
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim, **dd))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim, **dd))
        mark_no_weight_decay(self.cls_token, self.pos_embed)
        self.pos_drop = nn.Dropout(pos_drop_rate)

        # on the CPU whatever the default device: models are also built on the meta device (timm's tests)
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.layers = nn.Sequential(
            *[
                VimBlock(embed_dim, d_state, expand, drop_path=dpr[i], norm_eps=norm_eps, **dd)
                for i in range(depth)
            ]
        )
        reduction = self.patch_embed.stride[0]
        self.feature_info = [
            dict(module=f"layers.{i}", num_chs=embed_dim, reduction=reduction) for i in range(depth)
        ]
        self.norm_f = RmsNorm(embed_dim, eps=norm_eps, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()

        if weight_init != "skip":
            self.init_weights()
        record_no_weight_decay(self)

    @torch.no_grad()
    def init_weights(self) -> None:
        """The official init: trunc-normal(0.02) position/class embeddings and head, lecun-normal patch conv,
        zero Linear biases (but the SSM's dt bias), out_proj re-drawn and scaled by 1/sqrt(depth); the SSM's
        own parameters keep `Mamba.reset_ssm_parameters`."""
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        depth = len(self.layers)
        for m in self.layers.modules():
            if isinstance(m, nn.Linear) and m.bias is not None and not getattr(m.bias, "_no_reinit", False):
                nn.init.zeros_(m.bias)
            if isinstance(m, Mamba):
                # GPT-2 style: residual-branch output projections shrink with depth
                nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
                m.out_proj.weight.div_(math.sqrt(depth))

    # ------------------------------------------------------------------------------------------
    # timm API

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^cls_token|^pos_embed|^patch_embed",
            blocks=[(r"^layers\.(\d+)", None), (r"^norm_f", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is not None:
            if global_pool not in ("token", "avg", ""):
                raise ValueError(
                    f"VisionMamba: `global_pool` must be 'token', 'avg' or '', got {global_pool!r}"
                )
            self.global_pool = global_pool
        self.num_classes = num_classes
        dd = get_device_dtype(self)
        self.head = nn.Linear(self.embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def set_input_size(self, img_size: Union[int, Tuple[int, int]]) -> None:
        """Change the native input size, resampling the position embedding (class entry kept in the middle)."""
        old = self.patch_embed.grid_size
        self.patch_embed.set_input_size(img_size)
        new = self.patch_embed.grid_size
        if new != old:
            pe = resample_vim_pos_embed(self.pos_embed.detach(), new, old)
            self.pos_embed = nn.Parameter(pe, requires_grad=self.pos_embed.requires_grad)
            mark_no_weight_decay(self.pos_embed)

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        w = getattr(self.norm_f, "weight", None)  # None once pruned to Identity
        x = self.norm_f(x)
        return x if w is None else x.to(w.dtype)

    @staticmethod
    def cls_index(num_tokens: int) -> int:
        """Index of the class token in a sequence of `num_tokens` = patches + 1."""
        return (num_tokens - 1) // 2

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Image -> (batch, M + 1, C) tokens with the class token at M // 2, and the (H, W) token grid."""
        x = self.patch_embed(x)
        H, W = x.shape[1], x.shape[2]
        x = embed_tokens(x, self.cls_token, self.pos_embed, self.patch_embed.grid_size, self.dynamic_img_size)
        return self.pos_drop(x), (H, W)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Outputs of selected blocks (residual stream after the block), class token removed.

        Args:
            indices: last n blocks if int, all if None, else the block indices (negative from the end).
            return_prefix_tokens: pair each intermediate with its (batch, 1, C) class token.
            norm: apply the final norm to each intermediate.
            stop_early: skip the blocks after the last requested one.
            output_fmt: ``"NCHW"`` maps or ``"NLC"`` token sequences.
            intermediates_only: return only the list of intermediates.
        Returns:
            intermediates, or (forward_features output, intermediates).
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"VisionMamba: `output_fmt` must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        x, (H, W) = self._embed(x)
        B = x.shape[0]
        layers = self.layers[: max_index + 1] if stop_early else self.layers
        intermediates = []
        for i, blk in enumerate(layers):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(blk, x)
            else:
                x = blk(x)
            if i in take_indices:
                intermediates.append(self._final_norm(x) if norm else x)

        mid = self.cls_index(x.shape[1])
        prefix = [y[:, mid : mid + 1] for y in intermediates]
        intermediates = [torch.cat([y[:, :mid], y[:, mid + 1 :]], dim=1) for y in intermediates]
        if output_fmt == "NCHW":
            intermediates = [y.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates]
        if return_prefix_tokens:
            intermediates = list(zip(intermediates, prefix))
        if intermediates_only:
            return intermediates
        return self._final_norm(x), intermediates

    def prune_intermediate_layers(
        self,
        indices: Union[int, List[int]] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> List[int]:
        """Drop the blocks after the last of `indices` (and the final norm / head if asked)."""
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[: max_index + 1]
        if prune_norm:
            self.norm_f = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image -> all normalized tokens (batch, M + 1, C), class token at index M // 2."""
        x, _ = self._embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.layers, x)
        else:
            x = self.layers(x)
        return self._final_norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "token":
            x = x[:, self.cls_index(x.shape[1])]
        elif self.global_pool == "avg":
            mid = self.cls_index(x.shape[1])
            x = torch.cat([x[:, :mid], x[:, mid + 1 :]], dim=1).mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def load_pretrained(self, checkpoint_path: str, prefix: str = "") -> None:
        """Load an official checkpoint file (``{"model": state_dict, "args": Namespace, ...}``): official files
        pickle their argparse Namespace next to the weights, which timm's weights-only loader refuses."""
        load_pretrained(self, checkpoint_path, checkpoint_filter_fn, trusted=[argparse.Namespace], prefix=prefix)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: VisionMamba) -> Dict[str, torch.Tensor]:
    """Official Vim checkpoint -> this model: unwrap ``model``, resample the position embedding to the model's
    grid (official grids are square), keeping the class entry in the middle."""
    if "model" in state_dict:
        state_dict = state_dict["model"]
    elif "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    out = {}
    for k, v in state_dict.items():
        if k == "pos_embed" and v.shape != model.pos_embed.shape:
            m = v.shape[1] - 1
            side = math.isqrt(m)
            if side * side != m:
                raise ValueError(
                    f"checkpoint_filter_fn: checkpoint pos_embed has {m} grid entries, not a square grid"
                )
            v = resample_vim_pos_embed(v, model.patch_embed.grid_size, (side, side))
        out[k] = v
    return out


def _create_vim(variant: str, pretrained: bool = False, **kwargs) -> VisionMamba:
    # the last three blocks by default (fewer in shallow custom models)
    out_indices = kwargs.pop("out_indices", min(3, kwargs.get("depth", 3)))
    return build_model(
        VisionMamba,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )


def _cfg(url: str = "", **kwargs) -> Dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "test_input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.875,
        "test_crop_pct": 0.875,
        "interpolation": "bicubic",
        "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2401.09417",
        "paper_name": "Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model",
        "origin_url": "https://github.com/hustvl/Vim",
        **kwargs,
    }


def _official(repo: str, filename: str, top1: float) -> Dict[str, Any]:
    # Official files carry a pickled argparse Namespace: `custom_load` routes them to VisionMamba.load_pretrained.
    return _cfg(
        hf_hub_id=repo,
        hf_hub_filename=filename,
        url=f"https://huggingface.co/{repo}/resolve/main/{filename}",
        custom_load="hf",
        notes=(f"official ImageNet-1k weights, top-1 {top1}",),
    )


_TINY = _official("hustvl/Vim-tiny-midclstok", "vim_t_midclstok_76p1acc.pth", 76.1)
_TINY_S8 = _official("hustvl/Vim-tiny-midclstok", "vim_t_midclstok_ft_78p3acc.pth", 78.3)
_SMALL = _official("hustvl/Vim-small-midclstok", "vim_s_midclstok_80p5acc.pth", 80.5)
_SMALL_S8 = _official("hustvl/Vim-small-midclstok", "vim_s_midclstok_ft_81p6acc.pth", 81.6)
_BASE = _official("hustvl/Vim-base-midclstok", "vim_b_midclstok_81p9acc.pth", 81.9)

# The official registry's long names (hustvl/Vim vim/models_mamba.py), kept as aliases.
_ALIASES = {
    "vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": "vim_tiny_patch16_224",
    "vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_tiny_patch16_stride8_224"
    ),
    "vim_small_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": "vim_small_patch16_224",
    "vim_small_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2": (
        "vim_small_patch16_stride8_224"
    ),
    "vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2": "vim_base_patch16_224",
}

_CFGS = {
    "vim_tiny_patch16_224": _TINY,
    "vim_tiny_patch16_stride8_224": _TINY_S8,
    "vim_small_patch16_224": _SMALL,
    "vim_small_patch16_stride8_224": _SMALL_S8,
    "vim_base_patch16_224": _BASE,
}

default_cfgs = generate_default_cfgs(
    {
        **{f"{name}.in1k": cfg for name, cfg in _CFGS.items()},
        # the paper reports 83.2 for a stride-8 Vim-B; no weights were released for it
        "vim_base_patch16_stride8_224": _cfg(),
        **alias_cfgs({f"{name}.in1k": cfg for name, cfg in _CFGS.items()}, _ALIASES),
    }
)

_ARGS = {
    "vim_tiny_patch16_224": dict(patch_size=16, embed_dim=192, depth=24),
    "vim_small_patch16_224": dict(patch_size=16, embed_dim=384, depth=24),
    "vim_base_patch16_224": dict(patch_size=16, embed_dim=768, depth=24),
    "vim_tiny_patch16_stride8_224": dict(patch_size=16, stride=8, embed_dim=192, depth=24),
    "vim_small_patch16_stride8_224": dict(patch_size=16, stride=8, embed_dim=384, depth=24),
    "vim_base_patch16_stride8_224": dict(patch_size=16, stride=8, embed_dim=768, depth=24),
}


def _build(variant: str, base: str, pretrained: bool, kwargs: Dict[str, Any]) -> VisionMamba:
    return _create_vim(variant, pretrained=pretrained, **dict(_ARGS[base], **kwargs))


@register_model
def vim_tiny_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-Ti: embed 192, depth 24, patch 16 (7.15M params, 76.1 top-1)."""
    return _build("vim_tiny_patch16_224", "vim_tiny_patch16_224", pretrained, kwargs)


@register_model
def vim_small_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-S: embed 384, depth 24, patch 16 (25.8M params, 80.5 top-1)."""
    return _build("vim_small_patch16_224", "vim_small_patch16_224", pretrained, kwargs)


@register_model
def vim_base_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-B: embed 768, depth 24, patch 16 (97.6M params, 81.9 top-1)."""
    return _build("vim_base_patch16_224", "vim_base_patch16_224", pretrained, kwargs)


@register_model
def vim_tiny_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-Ti with stride-8 patches (27x27 tokens at 224; 78.3 top-1 fine-tuned)."""
    return _build("vim_tiny_patch16_stride8_224", "vim_tiny_patch16_stride8_224", pretrained, kwargs)


@register_model
def vim_small_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-S with stride-8 patches (27x27 tokens at 224; 81.6 top-1 fine-tuned)."""
    return _build("vim_small_patch16_stride8_224", "vim_small_patch16_stride8_224", pretrained, kwargs)


@register_model
def vim_base_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-B with stride-8 patches (27x27 tokens at 224; no official weights)."""
    return _build("vim_base_patch16_stride8_224", "vim_base_patch16_stride8_224", pretrained, kwargs)


# Official long names: aliases of the models above (same cfgs and weights).
register_aliases(__name__, _ALIASES, _build)
