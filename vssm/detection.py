"""vssm backbones for torchvision's detectors: Faster R-CNN, Mask R-CNN and RetinaNet.

    import vssm.detection as det

    model = det.maskrcnn("vmamba_tiny_s1l8", num_classes=91, checkpoint="vssm1_tiny_0230s_ckpt_epoch_264.pth")

What a detector gets from `backbone_with_fpn`: a module with ``out_channels`` whose forward maps a batch of
images to an OrderedDict of NCHW maps ``'0', '1', ...`` (strides 4, 8, 16, 32 by default) plus the extra
level(s) of its ``extra_blocks`` (``'pool'``, stride 64, from torchvision's ``LastLevelMaxPool``: the RPN's
coarsest anchors).

- Hierarchical families (VMamba, SiMBA) give their stage outputs through timm's ``features_only`` (VMamba
  with one LayerNorm per stage output, as its official detection backbone), then torchvision's FPN.
- Plain Vim gives one block's output (stride 16; the final norm applied), from which a simple feature
  pyramid (ViTDet) makes strides 4 and 8 by 2x transposed convs, keeps 16 and max-pools to 32; the FPN
  follows. Vim runs with ``dynamic_img_size=True``: its position embedding is resampled to each batch's
  token grid, so non-square sizes and sizes that change from batch to batch work.
- Inputs of any size: the backbone pads images (bottom and right, with zeros, as torchvision's
  ``GeneralizedRCNNTransform`` does) to a multiple of its coarsest stride, so every map is exactly
  ceil(size / stride) and the RPN's anchors line up with the image. For Vim's stride-8 variants (patch 16,
  stride 8) it pads by the extra ``patch - stride`` too, which makes the token grid size / 8.
- BatchNorm layers of a backbone (SiMBA's stem) are frozen (timm's ``FrozenBatchNorm2d``), as torchvision
  freezes those of its detection ResNets: detection batches of two images per GPU are too small for
  batch statistics.

Weights: `load_backbone_weights` reads a training checkpoint of tools/train.py, an official classification
checkpoint (through the family's ``checkpoint_filter_fn``), an official detection checkpoint (the backbone's
keys under mmdet's ``backbone.`` or detectron2's ``backbone.net.`` / ``backbone.bottom_up.`` prefix are found
by matching), or an exported backbone, and returns a `LoadReport` of what was used and what was not.
Pickled objects other than tensors (trainer configs, numpy arrays, logging state) are never unpickled:
they load as inert placeholders, so neither mmengine nor detectron2 is needed and no code in a file runs
(a file naming what torch never unpickles, such as ``os`` functions, is refused).
`export_backbone` writes a backbone without its classifier as safetensors plus a JSON description (model
name, kwargs, feature_info), which `load_backbone` reads back.

Fine-tuning: `param_groups_lrd` gives layer-wise lr decay groups (timm's ``param_groups_layer_decay`` over the
model's ``group_matcher``, with its ``no_weight_decay`` set); ``trainable_layers`` freezes the first of the
model's coarse ``group_matcher`` groups.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import pickle
import sys
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import LayerNorm2d, freeze_batch_norm_2d
from timm.models._features import FeatureGetterNet
from timm.models._manipulate import group_with_matcher
from timm.optim import param_groups_layer_decay
from torchvision.models.detection import FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

__all__ = [
    "FeatureBackbone",
    "SimpleFeaturePyramid",
    "DetectionBackbone",
    "LoadReport",
    "backbone_with_fpn",
    "fasterrcnn",
    "maskrcnn",
    "retinanet",
    "load_backbone_weights",
    "export_backbone",
    "save_backbone",
    "load_backbone",
    "backbone_layers",
    "freeze_backbone_layers",
    "param_groups_lrd",
]

_logger = logging.getLogger(__name__)

TRAINING_FORMAT = "vssm.train"  # the "format" of tools/train.py's checkpoints
EXPORT_FORMAT = "vssm.backbone"
EXPORT_VERSION = 1
_METADATA_KEY = EXPORT_FORMAT  # the JSON description inside the safetensors header

CheckpointSource = Union[str, os.PathLike, Dict[str, Any]]


# ------------------------------------------------------------------------------------------- models


def _create(name: str, **kwargs) -> nn.Module:
    """timm.create_model with errors that name the argument at fault."""
    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {close}?" if close else " (is vssm imported?)"
        raise ValueError(f"name: {name!r} is not a registered model{hint}")
    try:
        return timm.create_model(name, **kwargs)
    except TypeError as e:
        raise ValueError(f"model_kwargs: {name!r} does not accept these arguments ({e})") from e


def _is_index(i: Any) -> bool:
    return isinstance(i, int) and not isinstance(i, bool)


def _stage_indices(out_indices: Any, strides: Optional[Sequence[int]], infos: List[dict]) -> List[int]:
    """Stage indices of a hierarchical model from `out_indices` or from the `strides` wanted."""
    n, reductions = len(infos), [f["reduction"] for f in infos]
    if out_indices is not None and strides is not None:
        raise ValueError("out_indices, strides: name the stages of a hierarchical model by one of them, not both")
    if strides is not None:
        strides = list(strides)
        missing = [s for s in strides if s not in reductions]
        if missing or not strides:
            raise ValueError(f"strides: {strides} are not all stage strides of the model (it has {reductions})")
        out_indices = [reductions.index(s) for s in strides]
    if out_indices is None:
        return list(range(n))
    if _is_index(out_indices) or not isinstance(out_indices, (list, tuple)) or not out_indices:
        raise ValueError(
            f"out_indices: expected a non-empty sequence of stage indices of the model's {n} stages "
            f"(e.g. (1, 2, 3)), got {out_indices!r}"
        )
    if not all(_is_index(i) and -n <= i < n for i in out_indices):
        raise ValueError(f"out_indices: {out_indices!r} must be stage indices in [-{n}, {n - 1}] (the model has {n} stages)")
    norm = [i % n for i in out_indices]
    if any(b <= a for a, b in zip(norm, norm[1:])):
        raise ValueError(f"out_indices: {out_indices!r} must name distinct stages from shallow to deep")
    return norm


def _block_index(out_indices: Any, n: int) -> int:
    """The one block of a plain model whose output the simple feature pyramid starts from."""
    if out_indices is None:
        return n - 1
    if isinstance(out_indices, (list, tuple)):
        if len(out_indices) != 1:
            raise ValueError(
                f"out_indices: a plain model (one stride) gives the pyramid one block's map; name one of its "
                f"{n} blocks, got {out_indices!r}"
            )
        out_indices = out_indices[0]
    if not _is_index(out_indices) or not -n <= out_indices < n:
        raise ValueError(f"out_indices: {out_indices!r} is not a block index in [-{n}, {n - 1}] ({n} blocks)")
    return out_indices % n


class FeatureBackbone(nn.Module):
    """A registered model cut to its feature maps: image -> list of NCHW maps (timm's forward_intermediates).

    Args:
        name: registered model name. out_indices: stage indices of a hierarchical model (default all), or
            the one block of a plain model (default the last). pretrained: timm's pretrained weights.
        strides: hierarchical models: take the stages at these strides (instead of out_indices); plain
            models ignore it here (`DetectionBackbone` builds those strides with a simple feature pyramid).
        model_kwargs: passed to timm.create_model (plain models get ``dynamic_img_size=True`` unless given).

    Attributes: ``model`` (the pruned timm model, classifier removed), ``model_name``, ``model_kwargs``,
    ``out_indices``, ``feature_info`` (``num_chs`` / ``reduction`` / ``module`` per map), ``is_plain``,
    ``classifier_keys`` (the state_dict keys of the classification model) and ``reference_keys`` (those
    and, for hierarchical families, the keys of the features_only form with every stage): what a
    checkpoint of this model may hold, to judge checkpoints by.
    """

    def __init__(
        self,
        name: str,
        out_indices: Union[int, Sequence[int], None] = None,
        pretrained: bool = False,
        *,
        strides: Optional[Sequence[int]] = None,
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        reference = _create(name, device="meta", **model_kwargs)
        infos = [dict(f) for f in reference.feature_info]
        self.classifier_keys = frozenset(reference.state_dict())
        self._reference_keys: Optional[frozenset] = None
        del reference
        self.model_name = name
        self.is_plain = len({f["reduction"] for f in infos}) == 1
        if self.is_plain:
            index = _block_index(out_indices, len(infos))
            model_kwargs.setdefault("dynamic_img_size", True)
            net = FeatureGetterNet(_create(name, pretrained=pretrained, **model_kwargs), [index], norm=True)
        else:
            indices = _stage_indices(out_indices, strides, infos)
            net = _create(name, pretrained=pretrained, features_only=True, out_indices=indices, **model_kwargs)
            if not isinstance(net, FeatureGetterNet):
                raise ValueError(
                    f"name: {name!r} gives {type(net).__name__} for features_only; FeatureBackbone needs timm's "
                    "FeatureGetterNet (feature_cls='getter', maps through forward_intermediates)"
                )
        self.model_kwargs = model_kwargs
        self.model = freeze_batch_norm_2d(net.model)
        self.out_indices = list(net.out_indices)
        self.norm = net.norm
        self.feature_info = [
            dict(num_chs=f["num_chs"], reduction=f["reduction"], module=f["module"]) for f in net.feature_info.get_dicts()
        ]
        # padding that makes every map ceil(size / stride): VMamba needs multiples of 32, Vim of its stride
        self.size_divisible = max(f["reduction"] for f in infos)
        patch_embed = getattr(self.model, "patch_embed", None)
        patch = getattr(patch_embed, "patch_size", None) if self.is_plain else None
        stride = self.size_divisible
        self.pad_extra = (0, 0) if patch is None else tuple(max(p - stride, 0) for p in patch)

    @property
    def reference_keys(self) -> frozenset:
        """Keys a checkpoint of this model (name and kwargs) may hold: the classification model's, and for
        hierarchical families those of its features_only form with every stage (VMamba's output norms)."""
        if self._reference_keys is None:
            keys = set(self.classifier_keys)
            if not self.is_plain:
                features = _create(self.model_name, device="meta", features_only=True, **self.model_kwargs)
                keys |= {k.removeprefix("model.") for k in features.state_dict()}
            self._reference_keys = frozenset(keys)
        return self._reference_keys

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad bottom and right to a multiple of ``size_divisible`` (plus a plain model's patch - stride)."""
        h, w = x.shape[-2:]
        ph = -h % self.size_divisible + self.pad_extra[0]
        pw = -w % self.size_divisible + self.pad_extra[1]
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.model.forward_intermediates(
            self.pad(x), indices=self.out_indices, norm=self.norm, output_fmt="NCHW", intermediates_only=True
        )


class SimpleFeaturePyramid(nn.Module):
    """One stride-s map -> maps at the given strides (ViTDet): 2x transposed convs up (LayerNorm + GELU
    between two of them), identity at s, max-pooling down. Channels halve with every 2x up-step."""

    def __init__(self, dim: int, in_stride: int, strides: Sequence[int]) -> None:
        super().__init__()
        strides = list(strides)
        ok = bool(strides) and all(_is_index(s) and s > 0 for s in strides)
        ratios = [max(s, in_stride) // min(s, in_stride) for s in strides] if ok else []
        if not ok or any(r & (r - 1) or max(s, in_stride) % min(s, in_stride) for r, s in zip(ratios, strides)):
            raise ValueError(f"strides: {strides!r} must be the input stride {in_stride} times powers of two")
        if any(b <= a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"strides: {strides!r} must increase")
        self.strides, self.channels = strides, []
        levels = []
        for s, r in zip(strides, ratios):
            if s < in_stride:
                steps = int(math.log2(r))
                if dim % r:
                    raise ValueError(f"strides: stride {s} halves the width {dim} {steps} times; it must divide by {r}")
                layers, c = [], dim
                for i in range(steps):
                    if i:
                        layers += [LayerNorm2d(c), nn.GELU()]
                    layers.append(nn.ConvTranspose2d(c, c // 2, kernel_size=2, stride=2))
                    c //= 2
                levels.append(nn.Sequential(*layers))
            elif s == in_stride:
                levels.append(nn.Identity())
                c = dim
            else:
                levels.append(nn.MaxPool2d(kernel_size=r, stride=r, ceil_mode=True))
                c = dim
            self.channels.append(c)
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [level(x) for level in self.levels]


def _extra_levels(extra_blocks: ExtraFPNBlock, last_stride: int) -> Optional[Tuple[List[str], List[int]]]:
    if isinstance(extra_blocks, LastLevelMaxPool):
        return ["pool"], [2 * last_stride]
    if isinstance(extra_blocks, LastLevelP6P7):
        return ["p6", "p7"], [2 * last_stride, 4 * last_stride]
    return None  # unknown block: its names and strides are the caller's business


class DetectionBackbone(nn.Module):
    """FeatureBackbone (+ simple feature pyramid for plain models) + torchvision's FPN.

    ``out_channels`` and the OrderedDict output are what torchvision's detectors take. ``level_names`` are
    the FPN levels from the backbone (what RoI pooling uses), ``strides`` the stride of every output level
    (None for an ``extra_blocks`` other than LastLevelMaxPool / LastLevelP6P7).
    """

    def __init__(
        self,
        body: FeatureBackbone,
        fpn_channels: int = 256,
        norm_layer: Optional[Callable[..., nn.Module]] = None,
        extra_blocks: Optional[ExtraFPNBlock] = None,
        strides: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        if not _is_index(fpn_channels) or fpn_channels < 1:
            raise ValueError(f"fpn_channels: expected a positive int, got {fpn_channels!r}")
        self.body = body
        if body.is_plain:
            info = body.feature_info[0]
            self.pyramid = SimpleFeaturePyramid(info["num_chs"], info["reduction"], strides or (4, 8, 16, 32))
            strides, channels = self.pyramid.strides, self.pyramid.channels
        else:
            self.pyramid = None
            strides = [f["reduction"] for f in body.feature_info]
            channels = [f["num_chs"] for f in body.feature_info]
        body.size_divisible = math.lcm(body.size_divisible, max(strides))
        extra_blocks = LastLevelMaxPool() if extra_blocks is None else extra_blocks
        self.fpn = FeaturePyramidNetwork(channels, fpn_channels, extra_blocks=extra_blocks, norm_layer=norm_layer)
        self.out_channels = fpn_channels
        self.level_names = [str(i) for i in range(len(strides))]
        extra = _extra_levels(extra_blocks, strides[-1])
        self.strides = None if extra is None else list(strides) + extra[1]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(x)
        if self.pyramid is not None:
            maps = self.pyramid(maps[-1])
        return self.fpn(OrderedDict(zip(self.level_names, maps)))


def backbone_with_fpn(
    name: str,
    out_indices: Union[int, Sequence[int], None] = None,
    pretrained: bool = False,
    checkpoint: Optional[CheckpointSource] = None,
    fpn_channels: int = 256,
    trainable_layers: Optional[int] = None,
    norm_layer: Optional[Callable[..., nn.Module]] = None,
    *,
    strides: Optional[Sequence[int]] = None,
    extra_blocks: Optional[ExtraFPNBlock] = None,
    checkpoint_strict: bool = True,
    **model_kwargs: Any,
) -> DetectionBackbone:
    """A registered vssm model as a backbone for torchvision's detectors (see the module docstring).

    Args:
        name: registered model name (``vim_small_patch16_224``, ``vmamba_tiny_s1l8``, ``simba_s``, ...).
        out_indices: hierarchical models: stage indices (default all four); plain models: the block whose
            map feeds the simple feature pyramid (default the last).
        pretrained: timm's pretrained weights (official release files, downloaded).
        checkpoint: a file or state_dict to load into the backbone (`load_backbone_weights`); its report is
            logged and kept as ``.load_report``.
        fpn_channels: FPN width (the detector heads' input width).
        trainable_layers: how many of the backbone's coarse groups, counted from the top, keep training
            (`backbone_layers`); 0 freezes the backbone, None trains all.
        norm_layer: norm of the FPN's convs (torchvision's FeaturePyramidNetwork; None: no norm).
        strides: strides of the maps fed to the FPN: plain models build them with the simple pyramid
            (default 4, 8, 16, 32), hierarchical ones take the stages at these strides.
        extra_blocks: the FPN's extra levels (default LastLevelMaxPool, the RPN's ``'pool'`` level).
        checkpoint_strict: refuse a checkpoint of another model or configuration (see LoadReport).
        model_kwargs: passed to timm.create_model.
    """
    return _backbone(
        name, out_indices, pretrained, checkpoint, fpn_channels, trainable_layers, norm_layer,
        strides, None, extra_blocks, checkpoint_strict, model_kwargs,
    )


def _backbone(
    name: str,
    out_indices: Union[int, Sequence[int], None],
    pretrained: bool,
    checkpoint: Optional[CheckpointSource],
    fpn_channels: int,
    trainable_layers: Optional[int],
    norm_layer: Optional[Callable[..., nn.Module]],
    strides: Optional[Sequence[int]],
    default_strides: Optional[Sequence[int]],
    extra_blocks: Optional[ExtraFPNBlock],
    checkpoint_strict: bool,
    model_kwargs: Dict[str, Any],
) -> DetectionBackbone:
    """backbone_with_fpn, with the strides a detector wants when neither out_indices nor strides are given
    (None: every stage of a hierarchical model, 4-32 from a plain one's pyramid)."""
    stages = strides if strides is not None or out_indices is not None else default_strides
    body = FeatureBackbone(name, out_indices, pretrained, strides=stages, **model_kwargs)
    pyramid = (strides or default_strides) if body.is_plain else None
    backbone = DetectionBackbone(body, fpn_channels, norm_layer, extra_blocks, pyramid)
    backbone.load_report = None
    if checkpoint is not None:
        backbone.load_report = load_backbone_weights(body, checkpoint, strict=checkpoint_strict)
        _logger.info("%s", backbone.load_report)
    if trainable_layers is not None:
        freeze_backbone_layers(body.model, trainable_layers)
    return backbone


# ----------------------------------------------------------------------------------------- detectors


def _anchor_sizes(strides: Sequence[int], scales: Sequence[float]) -> Tuple[Tuple[int, ...], ...]:
    return tuple(tuple(int(s * k) for k in scales) for s in strides)


def _check_num_classes(num_classes: Optional[int], minimum: int, what: str) -> None:
    # None: the caller's box_predictor (and mask_predictor) fix the classes, as torchvision wants it
    if num_classes is not None and (not _is_index(num_classes) or num_classes < minimum):
        raise ValueError(f"num_classes: expected an int >= {minimum} ({what}) or None, got {num_classes!r}")


def _detector_kwargs(backbone: DetectionBackbone, kwargs: dict, masks: bool) -> dict:
    cfg = getattr(backbone.body.model, "pretrained_cfg", None) or {}
    kwargs.setdefault("image_mean", list(cfg.get("mean", (0.485, 0.456, 0.406))))
    kwargs.setdefault("image_std", list(cfg.get("std", (0.229, 0.224, 0.225))))
    if "rpn_anchor_generator" not in kwargs and backbone.strides is not None:
        # 8x the level's stride, three aspect ratios: torchvision's (32, ..., 512) for strides 4 ... 64
        sizes = _anchor_sizes(backbone.strides, (8,))
        kwargs["rpn_anchor_generator"] = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    if "box_roi_pool" not in kwargs:
        kwargs["box_roi_pool"] = MultiScaleRoIAlign(backbone.level_names, output_size=7, sampling_ratio=2)
    if masks and "mask_roi_pool" not in kwargs:
        kwargs["mask_roi_pool"] = MultiScaleRoIAlign(backbone.level_names, output_size=14, sampling_ratio=2)
    return kwargs


def fasterrcnn(
    name: str,
    num_classes: Optional[int],
    *,
    out_indices: Union[int, Sequence[int], None] = None,
    pretrained: bool = False,
    checkpoint: Optional[CheckpointSource] = None,
    fpn_channels: int = 256,
    trainable_layers: Optional[int] = None,
    norm_layer: Optional[Callable[..., nn.Module]] = None,
    strides: Optional[Sequence[int]] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    **detector_kwargs: Any,
) -> FasterRCNN:
    """torchvision's Faster R-CNN on `backbone_with_fpn` (num_classes counts the background; None when a
    box_predictor is given).

    Backbone arguments as `backbone_with_fpn` (timm kwargs in ``model_kwargs``); ``detector_kwargs`` go to
    torchvision's FasterRCNN (min_size, max_size, rpn_* / box_* settings, ...). Image mean/std default to the
    model's pretrained_cfg; anchors are 8x each level's stride.
    """
    _check_num_classes(num_classes, 2, "classes plus background")
    backbone = backbone_with_fpn(
        name, out_indices, pretrained, checkpoint, fpn_channels, trainable_layers, norm_layer,
        strides=strides, **(model_kwargs or {}),
    )
    return FasterRCNN(backbone, num_classes=num_classes, **_detector_kwargs(backbone, detector_kwargs, False))


def maskrcnn(
    name: str,
    num_classes: Optional[int],
    *,
    out_indices: Union[int, Sequence[int], None] = None,
    pretrained: bool = False,
    checkpoint: Optional[CheckpointSource] = None,
    fpn_channels: int = 256,
    trainable_layers: Optional[int] = None,
    norm_layer: Optional[Callable[..., nn.Module]] = None,
    strides: Optional[Sequence[int]] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    **detector_kwargs: Any,
) -> MaskRCNN:
    """torchvision's Mask R-CNN on `backbone_with_fpn`; arguments as `fasterrcnn`."""
    _check_num_classes(num_classes, 2, "classes plus background")
    backbone = backbone_with_fpn(
        name, out_indices, pretrained, checkpoint, fpn_channels, trainable_layers, norm_layer,
        strides=strides, **(model_kwargs or {}),
    )
    return MaskRCNN(backbone, num_classes=num_classes, **_detector_kwargs(backbone, detector_kwargs, True))


def retinanet(
    name: str,
    num_classes: int,
    *,
    out_indices: Union[int, Sequence[int], None] = None,
    pretrained: bool = False,
    checkpoint: Optional[CheckpointSource] = None,
    fpn_channels: int = 256,
    trainable_layers: Optional[int] = None,
    norm_layer: Optional[Callable[..., nn.Module]] = None,
    strides: Optional[Sequence[int]] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    **detector_kwargs: Any,
) -> RetinaNet:
    """torchvision's RetinaNet on maps at strides 8, 16, 32 plus P6 and P7 from P5 (LastLevelP6P7), anchors 4x
    the stride at three scales; num_classes without background. Arguments as `fasterrcnn`; out_indices of
    a hierarchical model or strides replace the default 8, 16, 32."""
    if not _is_index(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int (classes without background), got {num_classes!r}")
    if not _is_index(fpn_channels) or fpn_channels < 1:
        raise ValueError(f"fpn_channels: expected a positive int, got {fpn_channels!r}")
    backbone = _backbone(
        name, out_indices, pretrained, checkpoint, fpn_channels, trainable_layers, norm_layer,
        strides, (8, 16, 32), LastLevelP6P7(fpn_channels, fpn_channels), True, model_kwargs or {},
    )
    cfg = getattr(backbone.body.model, "pretrained_cfg", None) or {}
    detector_kwargs.setdefault("image_mean", list(cfg.get("mean", (0.485, 0.456, 0.406))))
    detector_kwargs.setdefault("image_std", list(cfg.get("std", (0.229, 0.224, 0.225))))
    if "anchor_generator" not in detector_kwargs:
        sizes = _anchor_sizes(backbone.strides, (4, 4 * 2 ** (1 / 3), 4 * 2 ** (2 / 3)))
        detector_kwargs["anchor_generator"] = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    return RetinaNet(backbone, num_classes=num_classes, **detector_kwargs)


# ---------------------------------------------------------------------------------------- checkpoints


class _Opaque:
    """Stands in for any pickled object that is not a tensor: takes whatever it is built with, keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _read_file(path: str) -> Tuple[Dict[str, Any], Optional[dict]]:
    """(contents, export description or None) of a safetensors or torch file, without running pickled code."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint: {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = (f.metadata() or {}).get(_METADATA_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return tensors, json.loads(meta) if meta else None
    names: List[str] = []
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # trainer configs, argparse namespaces, numpy scalars, mmengine's message hub: read as placeholders
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            with torch.serialization.safe_globals([(_Opaque, n) for n in names]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if names:  # torch never lets some modules' names (os, sys) be unpickled, not even as placeholders
            raise ValueError(
                f"checkpoint: {path!r} pickles {', '.join(names)}; some of these are never unpickled (not even as "
                "inert placeholders), so the file is not read"
            ) from e
        first = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"checkpoint: {path!r} could not be read as a torch or safetensors file ({type(e).__name__}: {first})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint: {path!r} holds a {type(obj).__name__}, expected a dict of tensors")
    return obj, None


@dataclass
class _Origin:
    state_dict: Dict[str, torch.Tensor]
    kind: str  # "export" | "training" | "weights"
    model_name: Optional[str] = None
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    img_size: Optional[int] = None
    description: Optional[dict] = None


def _tensors(d: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in d.items() if isinstance(v, torch.Tensor)}


def _unwrap(obj: Dict[str, Any], description: Optional[dict], source: str, ema: bool) -> _Origin:
    """The state_dict inside a file, and what the file says about the model it belongs to."""
    if description is not None:
        if description.get("format") != EXPORT_FORMAT:
            raise ValueError(f"checkpoint: {source} describes format {description.get('format')!r}, not {EXPORT_FORMAT!r}")
        return _Origin(
            _tensors(obj), "export", description.get("model_name"), dict(description.get("model_kwargs") or {}),
            description=description,
        )
    if obj.get("format") == TRAINING_FORMAT:
        key = "ema" if ema else "model"
        if not isinstance(obj.get(key), dict):
            raise ValueError(f"checkpoint: {source} has no {key!r} weights" + (" (trained without model_ema)" if ema else ""))
        config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        return _Origin(
            _tensors(obj[key]), "training", obj.get("model_name"), dict(config.get("model_kwargs") or {}),
            img_size=config.get("img_size"),
        )
    keys = ("model_ema", "state_dict_ema", "ema") if ema else ("model", "state_dict", "module")
    for key in keys:
        if isinstance(obj.get(key), dict) and _tensors(obj[key]):
            return _Origin(_tensors(obj[key]), "weights")
    if ema:
        raise ValueError(f"checkpoint: {source} has no EMA weights (looked for {keys})")
    tensors = _tensors(obj)
    if not tensors:
        raise ValueError(f"checkpoint: {source} holds no tensors (keys: {sorted(obj)[:8]})")
    return _Origin(tensors, "weights")


def _find_prefix(keys: Sequence[str], known: set) -> str:
    """The prefix under which most keys end in a known key ("backbone.", "backbone.net.", ...; "" if none)."""
    counts: Counter = Counter()
    for k in keys:
        if k in known:
            counts[""] += 1
            continue
        for i, ch in enumerate(k):
            if ch == "." and k[i + 1 :] in known:
                counts[k[: i + 1]] += 1
                break
    if not counts:
        return ""
    return max(counts.items(), key=lambda kv: (kv[1], -len(kv[0])))[0]


def _summary(keys: Sequence[str], limit: int = 8) -> str:
    """``layers.2.* (24), classifier.head.* (2), ...``: keys grouped by their first two names."""
    groups: Dict[str, int] = {}
    for k in keys:
        parts = k.split(".")
        g = ".".join(parts[: min(2, len(parts) - 1)]) + ".*" if len(parts) > 1 else k
        groups[g] = groups.get(g, 0) + 1
    items = [f"{g} ({n})" if n > 1 else g for g, n in groups.items()]
    more = f", ... (+{len(items) - limit} groups)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass
class LoadReport:
    """What a checkpoint gave a backbone.

    ``loaded``: backbone keys set from the file. ``adapted``: of those, the ones the family's
    checkpoint_filter_fn reshaped (a resampled position embedding). ``missing``: backbone keys the file
    lacks (left as initialised); ``missing_new`` are the ones a classification model does not have either
    (VMamba's per-stage output norms). ``unused``: file keys under the backbone's prefix the backbone does
    not use: ``unused_foreign`` are not even in the full classification model (so the file is of another
    model or configuration), the rest are the classifier and pruned layers. ``outside``: file keys outside
    the prefix (a detector's neck and heads). ``mismatched``: same key, other shape.
    """

    source: str
    model_name: str
    kind: str
    prefix: str
    loaded: List[str] = field(default_factory=list)
    adapted: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    missing_new: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    unused_foreign: List[str] = field(default_factory=list)
    outside: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    @property
    def problems(self) -> List[str]:
        """Why the file does not fit this backbone (empty when it does)."""
        out = []
        if self.mismatched:
            out.append(f"{len(self.mismatched)} shape mismatches: {self.mismatched[:4]}")
        if self.unused_foreign:
            out.append(f"{len(self.unused_foreign)} keys the model does not have: {_summary(self.unused_foreign)}")
        required = [k for k in self.missing if k not in self.missing_new]
        if required:
            out.append(f"{len(required)} backbone keys missing: {_summary(required)}")
        return out

    def __str__(self) -> str:
        lines = [
            f"checkpoint {self.source} ({self.kind}) -> backbone {self.model_name}"
            + (f", keys under {self.prefix!r}" if self.prefix else ""),
            f"  loaded: {len(self.loaded)} tensors",
        ]
        for label, keys in (
            ("adapted by the checkpoint filter", self.adapted),
            ("left as initialised (new for detection)", self.missing_new),
            ("left as initialised (missing from the file)", [k for k in self.missing if k not in self.missing_new]),
            ("not used (classifier, pruned layers)", [k for k in self.unused if k not in self.unused_foreign]),
            ("not used (not keys of this model)", self.unused_foreign),
            ("outside the backbone", self.outside),
        ):
            if keys:
                lines.append(f"  {label}: {len(keys)}: {_summary(keys)}")
        if self.mismatched:
            lines.append(f"  shape mismatches: {len(self.mismatched)}: {self.mismatched[:6]}")
        return "\n".join(lines)


def _checkpoint_filter(model: nn.Module) -> Callable[[dict, nn.Module], dict]:
    """The family's ``checkpoint_filter_fn`` (timm's convention: beside the model class)."""
    fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    return fn if fn is not None else (lambda sd, m: sd)


def _load_into(
    backbone: FeatureBackbone, origin: _Origin, source: str, strict: bool
) -> LoadReport:
    if origin.model_name is not None and origin.model_name != backbone.model_name:
        raise ValueError(
            f"checkpoint: {source} holds a {origin.model_name!r} ({origin.kind}), the backbone is {backbone.model_name!r}"
        )
    model = backbone.model
    own = model.state_dict()
    known = set(backbone.reference_keys) | set(own)
    prefix = _find_prefix(list(origin.state_dict), known)
    inside = {k[len(prefix) :]: v for k, v in origin.state_dict.items() if k.startswith(prefix)}
    outside = [k for k in origin.state_dict if not k.startswith(prefix)]
    try:
        state = _checkpoint_filter(model)(dict(inside), model)
    except (ValueError, RuntimeError, KeyError) as e:
        raise ValueError(f"checkpoint: {source}: the {backbone.model_name} checkpoint filter refused it ({e})") from e
    report = LoadReport(source, backbone.model_name, origin.kind, prefix, outside=outside)
    for k, v in state.items():
        if k.endswith(".num_batches_tracked") and k not in own:
            continue  # a BatchNorm's step counter; the backbone's BatchNorms are frozen and keep none
        if k not in own:
            report.unused.append(k)
            if k not in backbone.reference_keys:
                report.unused_foreign.append(k)
        elif v.shape != own[k].shape:
            report.mismatched.append(f"{k}: file {tuple(v.shape)} vs backbone {tuple(own[k].shape)}")
        else:
            report.loaded.append(k)
            if k in inside and inside[k].shape != v.shape:
                report.adapted.append(f"{k}: {tuple(inside[k].shape)} -> {tuple(v.shape)}")
    # keys in our naming that the filter dropped (SiMBA's aux_head when the model has none) were not used either
    report.unused += [k for k in inside if k not in state and k in backbone.reference_keys]
    report.missing = [k for k in own if k not in state]
    report.missing_new = [k for k in report.missing if k not in backbone.classifier_keys]
    if not report.loaded:
        raise ValueError(
            f"checkpoint: no tensor of {source} fits the backbone {backbone.model_name!r} "
            f"(file keys: {_summary(list(origin.state_dict), 4)}"
            + (f"; {report.problems[0]}" if report.mismatched else "")
            + "); is it a checkpoint of another model?"
        )
    if strict and report.problems:
        raise ValueError(
            f"checkpoint: {source} does not fit the backbone {backbone.model_name!r} with kwargs "
            f"{backbone.model_kwargs}: " + "; ".join(report.problems)
            + ". A checkpoint of another model or configuration? (strict=False loads what fits)"
        )
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report


def load_backbone_weights(
    backbone: FeatureBackbone, checkpoint: CheckpointSource, *, strict: bool = True, ema: bool = False
) -> LoadReport:
    """Load a checkpoint's backbone weights into `backbone` and report what was used.

    `checkpoint`: a path (torch file or an exported ``.safetensors``) or a dict already loaded. Accepted:
    tools/train.py checkpoints (``ema=True`` takes the EMA weights), official classification checkpoints
    (``{"model": ...}``, ``{"state_dict": ...}`` or bare), detection checkpoints (the backbone's prefix is
    found by matching key names), exported backbones, or a torchvision detector's state_dict of ours.
    With `strict`, a file that does not fit (shape mismatches, keys this model does not have, backbone keys
    missing other than new detection layers) is a ValueError naming the keys; nothing is loaded then.
    """
    if isinstance(checkpoint, dict):
        obj, description, source = checkpoint, None, "<state_dict>"
    elif isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        obj, description = _read_file(source)
    else:
        raise ValueError(f"checkpoint: expected a path or a state_dict, got {type(checkpoint).__name__}")
    return _load_into(backbone, _unwrap(obj, description, source, ema), source, strict)


# ---------------------------------------------------------------------------------------------- export


def _json_safe(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: {value!r} cannot be written to JSON ({e})") from e


def _export_paths(path: Union[str, os.PathLike]) -> Tuple[str, str]:
    stem = os.fspath(path)
    for suffix in (".safetensors", ".json"):
        stem = stem.removesuffix(suffix)
    return stem + ".safetensors", stem + ".json"


def save_backbone(backbone: FeatureBackbone, path: Union[str, os.PathLike], **extra: Any) -> Dict[str, Any]:
    """Write ``<path>.safetensors`` (the backbone's weights, its description in the header) and ``<path>.json``.

    The description: format, model name and kwargs, out_indices, feature_info, mean/std, and `extra`.
    Returns it.
    """
    from safetensors.torch import save_file

    weights_path, json_path = _export_paths(path)
    cfg = getattr(backbone.model, "pretrained_cfg", None) or {}
    description = dict(
        format=EXPORT_FORMAT,
        version=EXPORT_VERSION,
        model_name=backbone.model_name,
        model_kwargs=_json_safe("model_kwargs", backbone.model_kwargs),
        out_indices=list(backbone.out_indices),
        feature_info=_json_safe("feature_info", backbone.feature_info),
        mean=list(cfg.get("mean", ())),
        std=list(cfg.get("std", ())),
        **_json_safe("extra", extra),
    )
    text = json.dumps(description, indent=2)
    folder = os.path.dirname(os.path.abspath(weights_path))
    os.makedirs(folder, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in backbone.model.state_dict().items()}
    save_file(tensors, weights_path, metadata={_METADATA_KEY: json.dumps(description)})
    with open(json_path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return description


def load_backbone(path: Union[str, os.PathLike]) -> FeatureBackbone:
    """An exported backbone (``.safetensors``; the ``.json`` beside it may be named instead), weights loaded
    strictly. The description travels in the safetensors header; the JSON file is for people and tools."""
    weights_path, _ = _export_paths(path)
    obj, description = _read_file(weights_path)
    if description is None:
        raise ValueError(f"path: {weights_path!r} is not an exported backbone (no {_METADATA_KEY!r} metadata)")
    version = description.get("version", 0)
    if description.get("format") != EXPORT_FORMAT or version > EXPORT_VERSION:
        raise ValueError(f"path: {weights_path!r} has format {description.get('format')!r} v{version}; this code reads "
                         f"{EXPORT_FORMAT!r} up to v{EXPORT_VERSION}")
    backbone = FeatureBackbone(
        description["model_name"], description["out_indices"], **dict(description.get("model_kwargs") or {})
    )
    own = backbone.model.state_dict()
    if set(own) != set(obj):
        raise ValueError(
            f"path: {weights_path!r} does not match the backbone it describes: missing "
            f"{_summary([k for k in own if k not in obj])}; extra {_summary([k for k in obj if k not in own])}"
        )
    backbone.model.load_state_dict(obj, strict=True)
    return backbone


def _with_img_size(name: str, kwargs: Dict[str, Any], img_size: Optional[int]) -> Dict[str, Any]:
    """Add a training run's img_size to the kwargs of models that take one (Vim's position embedding)."""
    if img_size is None or "img_size" in kwargs:
        return kwargs
    try:
        _create(name, device="meta", img_size=img_size, **kwargs)
    except ValueError:
        return kwargs
    return dict(kwargs, img_size=img_size)


def export_backbone(
    checkpoint: CheckpointSource,
    output: Union[str, os.PathLike],
    *,
    model_name: Optional[str] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    out_indices: Union[int, Sequence[int], None] = None,
    ema: bool = False,
    strict: bool = True,
) -> Tuple[Dict[str, Any], LoadReport]:
    """Checkpoint -> exported backbone (``output.safetensors`` + ``output.json``); returns (description, report).

    A training checkpoint of tools/train.py names its model and kwargs; any other file needs `model_name`
    (and the `model_kwargs` it was built with). `out_indices` as `FeatureBackbone` (default: all stages, or
    the last block of a plain model).
    """
    if isinstance(checkpoint, dict):
        obj, description, source = checkpoint, None, "<state_dict>"
    else:
        source = os.fspath(checkpoint)
        obj, description = _read_file(source)
    origin = _unwrap(obj, description, source, ema)
    if model_name is not None and origin.model_name is not None and model_name != origin.model_name:
        raise ValueError(f"model_name: {model_name!r}, but {source} holds a {origin.model_name!r} ({origin.kind})")
    name = model_name or origin.model_name
    if name is None:
        raise ValueError(f"model_name: {source} does not say which model it holds; name it (e.g. 'vmamba_tiny_s1l8')")
    kwargs = _with_img_size(name, dict(origin.model_kwargs, **(model_kwargs or {})), origin.img_size)
    if out_indices is None and origin.description is not None:
        out_indices = origin.description.get("out_indices")
    backbone = FeatureBackbone(name, out_indices, **kwargs)
    report = _load_into(backbone, origin, source, strict)
    described = save_backbone(
        backbone,
        output,
        source=os.path.basename(source),
        source_kind=origin.kind,
        loaded=dict(
            tensors=len(report.loaded),
            missing=report.missing,
            unused=report.unused,
            outside=len(report.outside),
        ),
    )
    return described, report


# -------------------------------------------------------------------------------------------- fine-tuning


_UNMATCHED = "\0unmatched"  # a name no group_matcher pattern matches: where unmatched parameters go


def backbone_layers(model: nn.Module) -> List[List[str]]:
    """Parameter names of a timm model in its coarse ``group_matcher`` groups, input to output.

    Vim: patch embedding (+ class token, position embedding), each block, the final norm; VMamba: stem, each
    stage; SiMBA: stem, each stage (+ class block and norm). Parameters no group names (VMamba's per-stage
    output norms) join the last group.
    """
    if not hasattr(model, "group_matcher"):
        raise ValueError(f"model: {type(model).__name__} has no group_matcher")
    names = [n for n, _ in model.named_parameters()]
    ids = group_with_matcher([(n, None) for n in names + [_UNMATCHED]], model.group_matcher(coarse=True), reverse=True)
    top = ids.pop(_UNMATCHED)  # unmatched names sort last: this is the highest id
    last = max([i for n, i in ids.items() if i != top], default=0)
    groups: Dict[int, List[str]] = {}
    for n in names:
        i = ids[n] if ids[n] != top else last
        groups.setdefault(i, []).append(n)
    return [groups[i] for i in sorted(groups)]


def freeze_backbone_layers(model: nn.Module, trainable_layers: int) -> None:
    """Keep the top `trainable_layers` of `backbone_layers(model)` training; freeze the ones below."""
    layers = backbone_layers(model)
    if not _is_index(trainable_layers) or not 0 <= trainable_layers <= len(layers):
        raise ValueError(
            f"trainable_layers: expected an int in [0, {len(layers)}] ({type(model).__name__} has {len(layers)} "
            f"layers: its coarse group_matcher groups), got {trainable_layers!r}"
        )
    params = dict(model.named_parameters())
    for group in layers[: len(layers) - trainable_layers]:
        for n in group:
            params[n].requires_grad_(False)


def _find_backbone(model: nn.Module) -> nn.Module:
    if hasattr(model, "group_matcher"):
        return model
    for m in model.modules():
        if isinstance(m, FeatureBackbone):
            return m.model
    for m in model.modules():
        if hasattr(m, "group_matcher"):
            return m
    raise ValueError(f"model: {type(model).__name__} holds no backbone with a group_matcher (a timm / vssm model)")


def param_groups_lrd(
    model: nn.Module, lr: float, weight_decay: float = 0.05, layer_decay: float = 0.75
) -> List[Dict[str, Any]]:
    """Optimizer parameter groups with layer-wise lr decay for a detector (or a bare model) on a vssm backbone.

    The backbone's groups come from timm's ``param_groups_layer_decay`` over its ``group_matcher``: the
    topmost group trains at `lr`, each one below at ``layer_decay`` times the one above; its
    ``no_weight_decay()`` names and 1-D parameters (norms, biases) get no weight decay. Everything else (FPN,
    RPN, heads) trains at `lr`, with weight decay on its weights but not on 1-D parameters. Frozen parameters
    are left out. Each group's ``lr`` is already scaled, so any torch LR scheduler (torchvision's detection
    references) applies; timm's schedulers, which also scale by an ``lr_scale`` key, are not needed.
    """
    if not isinstance(layer_decay, (int, float)) or not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay: expected a float in (0, 1], got {layer_decay!r}")
    backbone = _find_backbone(model)
    no_decay = backbone.no_weight_decay() if hasattr(backbone, "no_weight_decay") else ()
    groups = []
    for g in param_groups_layer_decay(
        backbone, weight_decay=weight_decay, no_weight_decay_list=list(no_decay), layer_decay=layer_decay
    ):
        scale = g.pop("lr_scale")
        groups.append(dict(g, lr=lr * scale))
    inner = {id(p) for p in backbone.parameters()}
    rest: Dict[str, List[nn.Parameter]] = {"decay": [], "no_decay": []}
    for _, p in model.named_parameters():
        if p.requires_grad and id(p) not in inner:
            rest["no_decay" if p.ndim <= 1 else "decay"].append(p)
    if rest["decay"]:
        groups.append(dict(params=rest["decay"], lr=lr, weight_decay=weight_decay))
    if rest["no_decay"]:
        groups.append(dict(params=rest["no_decay"], lr=lr, weight_decay=0.0))
    return groups
