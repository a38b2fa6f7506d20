"""What a run is made of: the model, the datasets with timm's transforms, and the loaders.

The loaders draw their worker seeds from their own generators (seeded by run seed, rank and epoch), never
from the global random stream: how many workers there are, and when they start, then changes nothing
the training draws, which is what makes a resume exact with workers > 0.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn as nn

__all__ = ["build_datasets", "build_loaders", "create_model", "data_config_for", "dataset_classes", "loader_seed",
           "model_from_config"]


def create_model(name: str, img_size: int | None = None, **kwargs) -> nn.Module:
    """timm.create_model with vssm's families registered. ``img_size`` goes to models that take one (CNNs
    take any input size and are built without it; an ``img_size`` in kwargs wins). An unknown name or a
    keyword argument the model rejects is a ValueError naming it."""
    import timm

    import vssm  # noqa: F401  (registers the vssm families with timm)

    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        raise ValueError(f"model: {name!r} is not a timm model" + (f"; did you mean {close}?" if close else ""))
    try:
        if img_size is not None and "img_size" not in kwargs:
            try:
                return timm.create_model(name, img_size=img_size, **kwargs)
            except TypeError as e:
                if "img_size" not in str(e):
                    raise
        return timm.create_model(name, **kwargs)
    except TypeError as e:
        raise ValueError(f"model_kwargs: {name!r} does not accept these arguments ({e})") from e


def model_from_config(cfg: argparse.Namespace, num_classes: int) -> nn.Module:
    """The config's model: classes, drop rates, image size, kwargs and pretrained weights."""
    kwargs = dict(cfg.model_kwargs or {})
    kwargs.update(num_classes=num_classes, drop_rate=cfg.drop, drop_path_rate=cfg.drop_path)
    if cfg.pretrained_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=cfg.pretrained_file)
    pretrained = bool(cfg.pretrained or cfg.pretrained_file)
    return create_model(cfg.model, cfg.img_size, pretrained=pretrained, **kwargs)


def data_config_for(cfg: argparse.Namespace, model: nn.Module) -> dict:
    from timm.data import resolve_data_config

    args = {k: getattr(cfg, k) for k in ("img_size", "interpolation", "crop_pct", "mean", "std") if getattr(cfg, k) is not None}
    return resolve_data_config(args, model=model)


def build_datasets(cfg: argparse.Namespace, data_config: dict):
    """(train, val) datasets with timm's train and eval transforms (synthetic data is already tensors)."""
    from timm.data import create_transform

    from vssm.data import build_dataset, patch_timm_posterize

    size = data_config["input_size"]
    train_tf = val_tf = None
    if cfg.dataset != "synthetic":
        if cfg.aa:
            patch_timm_posterize()
        train_tf = create_transform(
            size, is_training=True, scale=tuple(cfg.scale) if cfg.scale else None, hflip=cfg.hflip,
            color_jitter=cfg.color_jitter, auto_augment=cfg.aa, interpolation=cfg.train_interpolation,
            mean=data_config["mean"], std=data_config["std"], re_prob=cfg.reprob, re_mode=cfg.remode,
            re_count=cfg.recount,
        )
        val_tf = create_transform(
            size, is_training=False, interpolation=data_config["interpolation"], mean=data_config["mean"],
            std=data_config["std"], crop_pct=data_config["crop_pct"], crop_mode=data_config.get("crop_mode"),
        )
    common = dict(root=cfg.data_dir, img_size=size[-1], num_classes=cfg.num_classes or 1000, in_chans=size[0], seed=cfg.seed)
    train = build_dataset(cfg.dataset, "train", transform=train_tf, num_samples=cfg.synthetic_samples, **common)
    val = build_dataset(cfg.dataset, "val", transform=val_tf, num_samples=cfg.synthetic_val_samples, **common)
    return train, val


def dataset_classes(cfg: argparse.Namespace) -> int:
    """Number of classes: the config's, else what the dataset says."""
    if cfg.num_classes:
        return cfg.num_classes
    if cfg.dataset == "digits":
        return 10
    if cfg.dataset == "synthetic":
        return 1000
    from vssm.data import build_dataset

    ds = build_dataset("imagefolder", "train", root=cfg.data_dir)
    reader = getattr(ds, "reader", None)
    classes = getattr(reader, "class_to_idx", None) or getattr(ds, "class_to_idx", None)
    if not classes:
        raise ValueError(f"could not read the classes of {cfg.data_dir!r}; set `num_classes`")
    return len(classes)


def loader_seed(seed: int, rank: int, epoch: int) -> int:
    """Seed of the generator a loader draws its worker seeds from: fixed by (seed, rank, epoch)."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _seed_worker(worker_id: int) -> None:
    # torch seeds python's and its own RNG per worker; numpy (used by some augmentations) too
    np.random.seed(torch.initial_seed() % 2**32)


def build_loaders(cfg: argparse.Namespace, train_ds, val_ds, rank: int = 0, world_size: int = 1, pin: bool = False):
    """(train loader, val loader, train sampler). Call ``sampler.set_epoch(e)`` and
    ``train_loader.generator.manual_seed(loader_seed(seed, rank, e))`` before each epoch."""
    from timm.data.distributed_sampler import RepeatAugSampler
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    if cfg.repeated_aug:
        sampler = RepeatAugSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True)
    else:
        # also with one process: the order depends only on (seed, epoch), which makes resuming exact
        sampler = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True, seed=cfg.seed)
    # fresh workers each epoch, seeded from the loader's own generator (reseeded per epoch)
    train_loader = DataLoader(
        train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, pin_memory=pin,
        drop_last=True, persistent_workers=False, worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(loader_seed(cfg.seed, rank, 0)),
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"the training set has {len(train_ds)} samples, fewer than one batch of {cfg.batch_size} per rank "
            f"on {world_size} rank(s): lower `batch_size`"
        )
    # each rank scores a disjoint share of the val set; the sums are reduced, so nothing is counted twice.
    # Its own generator: the persistent workers start on the first evaluation of this process (epoch 1 of a
    # run, the first epoch after a resume) and must not take a number from the training's stream then.
    val_part = Subset(val_ds, list(range(rank, len(val_ds), world_size)))
    val_loader = DataLoader(
        val_part, batch_size=cfg.val_batch_size or 2 * cfg.batch_size, shuffle=False, num_workers=cfg.workers,
        pin_memory=pin, persistent_workers=cfg.workers > 0, worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(loader_seed(cfg.seed, rank, -1 % 2**31)),
    )
    return train_loader, val_loader, sampler


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compiled(model: torch.nn.Module, mode: str | None) -> torch.nn.Module:
    """``torch.compile(model, mode=mode)``, or the model itself for mode None. The scan and conv ops are
    custom ops with fake implementations, so the graph holds them whole (``fullgraph`` traces through)."""
    if mode is None:
        return model
    if mode not in COMPILE_MODES:
        raise ValueError(f"--compile must be one of {COMPILE_MODES}, got {mode!r}")
    return torch.compile(model, mode=None if mode == "default" else mode)
