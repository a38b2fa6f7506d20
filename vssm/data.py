"""Datasets for the tools: ImageFolder (through timm), scikit-learn's digits, and synthetic images.

``digits`` is the quick start's dataset: the 1797 real 8x8 handwritten digits bundled with
scikit-learn (no download), upscaled to the model's input size as RGB PIL images so the usual timm
transforms apply, split into train/val by a fixed stratified shuffle (the same split on every run
and machine).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["DATASETS", "DigitsDataset", "SyntheticDataset", "build_dataset", "digits_split", "patch_timm_posterize"]

DATASETS = ("imagefolder", "digits", "synthetic")


def digits_split(val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) into sklearn's digits: stratified, fixed by ``seed``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"digits_split: `val_fraction` must be in (0, 1), got {val_fraction!r}")
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rng = np.random.RandomState(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class DigitsDataset(Dataset):
    """scikit-learn's handwritten digits as RGB PIL images of ``img_size`` (10 classes).

    Args:
        split: ``"train"`` (80%) or ``"val"`` (20%), a fixed stratified split.
        img_size: side of the upscaled square image (bicubic from 8x8).
        transform: applied to each PIL image (e.g. from ``timm.data.create_transform``).
    """

    num_classes = 10

    def __init__(self, split: str = "train", img_size: int = 32, transform: Callable | None = None,
                 val_fraction: float = 0.2, seed: int = 0):
        if split not in ("train", "val"):
            raise ValueError(f"DigitsDataset: `split` must be 'train' or 'val', got {split!r}")
        if not isinstance(img_size, int) or img_size < 8:
            raise ValueError(f"DigitsDataset: `img_size` must be an int >= 8, got {img_size!r}")
        from PIL import Image
        from sklearn.datasets import load_digits

        digits = load_digits()
        train_idx, val_idx = digits_split(val_fraction, seed)
        idx = train_idx if split == "train" else val_idx
        # pixel values are 0..16; resize once here so the per-sample cost is only the transform
        pixels = (digits.images[idx] * (255.0 / 16.0)).round().astype(np.uint8)
        self.images = [
            Image.fromarray(p, mode="L").resize((img_size, img_size), Image.BICUBIC).convert("RGB") for p in pixels
        ]
        self.targets = [int(t) for t in digits.target[idx]]
        self.transform = transform
        self.split = split

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img = self.images[index]
        return (self.transform(img) if self.transform is not None else img), self.targets[index]


class SyntheticDataset(Dataset):
    """Random normalised images and labels, the same for a given (seed, index): throughput tests.

    The label is a function of the image's mean, so a model can learn something (loss goes down).
    """

    def __init__(self, num_samples: int = 1024, input_size: tuple[int, int, int] = (3, 224, 224),
                 num_classes: int = 1000, seed: int = 0):
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"SyntheticDataset: `num_samples` must be a positive int, got {num_samples!r}")
        if len(input_size) != 3 or any((not isinstance(s, int)) or s < 1 for s in input_size):
            raise ValueError(f"SyntheticDataset: `input_size` must be (C, H, W) of positive ints, got {input_size!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"SyntheticDataset: `num_classes` must be a positive int, got {num_classes!r}")
        self.num_samples, self.input_size, self.num_classes, self.seed = num_samples, tuple(input_size), num_classes, seed
        self.targets = [int(t) for t in torch.randint(num_classes, (num_samples,), generator=torch.Generator().manual_seed(seed))]

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        target = self.targets[index]
        img = torch.randn(self.input_size, generator=g)
        # shift by a class-dependent amount so the task is learnable
        img += (target - (self.num_classes - 1) / 2) / max(self.num_classes, 1)
        return img, target


def _posterize(img, bits_to_keep, **__):
    """timm's posterize op, with 0 bits kept meaning a black image (what Pillow < 11 returned)."""
    from PIL import Image, ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def patch_timm_posterize() -> bool:
    """Make timm's RandAugment work with current Pillow; returns True when a patch was needed.

    DeiT's ``rand-m9-mstd0.5-inc1`` samples magnitudes up to 10, at which ``PosterizeIncreasing`` keeps 0
    bits; recent Pillow rejects ``posterize(img, 0)`` with a ValueError that kills the data loader.
    Must run before the transforms are built (each op looks its function up once).
    """
    from PIL import Image, ImageOps
    from timm.data import auto_augment

    try:
        ImageOps.posterize(Image.new("L", (1, 1)), 0)
        return False
    except ValueError:
        for name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
            if name in auto_augment.NAME_TO_OP:
                auto_augment.NAME_TO_OP[name] = _posterize
        return True


def build_dataset(name: str, split: str, *, root: str | None = None, transform: Callable | None = None,
                  img_size: int = 224, num_classes: int = 1000, num_samples: int = 1024,
                  in_chans: int = 3, seed: int = 0) -> Dataset:
    """One split of a dataset by name.

    Args:
        name: ``imagefolder`` (``root/<split>/<class>/*.jpg``, read by timm), ``digits`` or ``synthetic``.
        split: ``train`` or ``val`` (an ImageFolder's ``val`` may also be named ``validation``).
        transform: applied to PIL images (ImageFolder, digits); synthetic images are already tensors.
    """
    if name not in DATASETS:
        raise ValueError(f"build_dataset: `name` must be one of {DATASETS}, got {name!r}")
    if split not in ("train", "val"):
        raise ValueError(f"build_dataset: `split` must be 'train' or 'val', got {split!r}")
    if name == "digits":
        return DigitsDataset(split, img_size=img_size, transform=transform)
    if name == "synthetic":
        # train and val differ (different seeds) but come from the same distribution
        return SyntheticDataset(num_samples, (in_chans, img_size, img_size), num_classes,
                                seed=seed + (0 if split == "train" else 1))
    if not root:
        raise ValueError("build_dataset: `root` (the folder holding train/ and val/) is required for 'imagefolder'")
    if not os.path.isdir(root):
        raise ValueError(f"build_dataset: `root` {root!r} is not a directory")
    from timm.data import create_dataset

    candidates = ["train"] if split == "train" else ["val", "validation"]
    for sub in candidates:
        if os.path.isdir(os.path.join(root, sub)):
            return create_dataset("", root=root, split=sub, is_training=split == "train", transform=transform)
    raise ValueError(f"build_dataset: no {' or '.join(candidates)} folder under {root!r} (ImageFolder layout expected)")
