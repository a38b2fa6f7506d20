#!/usr/bin/env python3
"""Train an image classifier: any timm model name, vssm's families included.

    python tools/train.py --config configs/quickstart.yaml --output runs/quickstart
    torchrun --nproc_per_node 8 tools/train.py --config configs/vim/vim_tiny_patch16_224.yaml \
        --data-dir /data/imagenet --output runs/vim_tiny

Every key of the YAML config is also a command-line flag (``lr_base_batch`` -> ``--lr-base-batch``);
the command line wins, and the resolved config is written to ``<output>/config.yaml``.

The run folder gets ``last.pth`` (every epoch) and ``best.pth`` (best val top-1), ``metrics.csv`` /
``metrics.jsonl`` (one row per epoch), ``plot.png`` (loss and top-1 curves, redrawn each epoch) and,
at the end, ``summary.json``. ``--resume <run>/last.pth`` (or ``--resume auto``) continues a run
where its last checkpoint left it: model, optimizer, scheduler, grad scaler, EMA, epoch, step and the
RNG states of every rank, so the resumed run ends on the same weights as one that never stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import yaml

if __package__ in (None, ""):  # run as a script: make `tools.` importable like in the tests
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import _cli  # noqa: E402

CHECKPOINT_FORMAT = "vssm.train"
CHECKPOINT_VERSION = 1
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
NAN_POLICIES = ("stop", "skip")


# ----------------------------------------------------------------------------------------------
# configuration


def _optional(kind):
    """argparse type that also accepts none/null (to clear a value set by the YAML file)."""

    def convert(text: str):
        if text.strip().lower() in ("none", "null", "~"):
            return None
        return kind(text)

    convert.__name__ = kind.__name__
    return convert


def _kwargs(text: str) -> dict:
    """``key=value`` (value parsed as YAML) for model_kwargs on the command line."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    return {key.strip(): yaml.safe_load(value)}


# key: (default, type, help). type: int/float/str, bool (--x/--no-x), "floats" (list), "kwargs".
CONFIG_SPEC: dict[str, tuple[Any, Any, str]] = {
    # model
    "model": (None, str, "timm model name (vssm's models are registered on `import vssm`)"),
    "model_kwargs": ({}, "kwargs", "extra keyword arguments for timm.create_model, as key=value"),
    "pretrained": (False, bool, "start from the model's pretrained weights"),
    "pretrained_file": (None, str, "start from this weights file (official format), via the model's checkpoint filter"),
    "num_classes": (None, int, "classes (default: from the dataset)"),
    "img_size": (None, int, "input side (default: the model's pretrained_cfg)"),
    "drop": (0.0, float, "dropout rate"),
    "drop_path": (0.1, float, "stochastic depth rate"),
    # data
    "dataset": ("imagefolder", str, "imagefolder | digits | synthetic"),
    "data_dir": (None, str, "ImageFolder root holding train/ and val/"),
    "synthetic_samples": (1024, int, "training samples of the synthetic dataset"),
    "synthetic_val_samples": (256, int, "validation samples of the synthetic dataset"),
    "workers": (4, int, "data loader worker processes per rank"),
    "pin_mem": (True, bool, "pin host memory (CUDA)"),
    "interpolation": (None, str, "eval resize interpolation (default: pretrained_cfg)"),
    "crop_pct": (None, float, "eval center-crop fraction (default: pretrained_cfg)"),
    "mean": (None, "floats", "normalisation mean (default: pretrained_cfg)"),
    "std": (None, "floats", "normalisation std (default: pretrained_cfg)"),
    # augmentation
    "train_interpolation": ("bicubic", str, "train resize interpolation (random, bilinear, bicubic)"),
    "scale": (None, "floats", "random-resized-crop scale range (default 0.08 1.0)"),
    "hflip": (0.5, float, "horizontal flip probability"),
    "color_jitter": (0.4, float, "color jitter strength (ignored when aa is set)"),
    "aa": (None, str, "auto-augment policy, e.g. rand-m9-mstd0.5-inc1"),
    "reprob": (0.0, float, "random erasing probability"),
    "remode": ("pixel", str, "random erasing mode"),
    "recount": (1, int, "random erasing count"),
    "repeated_aug": (False, bool, "repeated augmentation sampler (3 repeats, DeiT)"),
    "mixup": (0.0, float, "mixup alpha (0 = off)"),
    "cutmix": (0.0, float, "cutmix alpha (0 = off)"),
    "mixup_prob": (1.0, float, "probability of mixup or cutmix per batch"),
    "mixup_switch_prob": (0.5, float, "probability of cutmix instead of mixup when both are on"),
    "mixup_mode": ("batch", str, "batch | pair | elem"),
    "smoothing": (0.1, float, "label smoothing"),
    # optimisation
    "epochs": (300, int, "training epochs (cosine length)"),
    "cooldown_epochs": (0, int, "extra epochs at min_lr after the schedule (DeiT: 10)"),
    "epoch_steps": (None, int, "cap on batches per epoch (smoke and throughput runs)"),
    "batch_size": (128, int, "batch size per rank"),
    "val_batch_size": (None, int, "validation batch size per rank (default 2x batch_size)"),
    "accum_steps": (1, int, "gradient accumulation steps"),
    "opt": ("adamw", str, "optimizer (timm.optim name)"),
    "lr": (None, float, "absolute learning rate (default: base_lr * global batch / lr_base_batch)"),
    "base_lr": (5e-4, float, "learning rate per lr_base_batch images"),
    "lr_base_batch": (512, int, "batch size base_lr refers to"),
    "weight_decay": (0.05, float, "weight decay (not on norms, biases, model.no_weight_decay())"),
    "opt_eps": (1e-8, float, "optimizer epsilon"),
    "opt_betas": (None, "floats", "optimizer betas"),
    "momentum": (0.9, float, "SGD momentum"),
    "clip_grad": (None, float, "clip gradient norm to this (off when unset)"),
    "sched": ("cosine", str, "timm scheduler name"),
    "warmup_epochs": (5, int, "linear warmup epochs"),
    "warmup_lr": (1e-6, float, "learning rate at the start of warmup"),
    "warmup_prefix": (False, bool, "warmup before the cosine instead of inside it (Swin/VMamba)"),
    "min_lr": (1e-5, float, "floor of the cosine"),
    "model_ema": (False, bool, "keep an EMA of the weights (timm ModelEmaV3) and validate it too"),
    "model_ema_decay": (0.9998, float, "EMA decay"),
    "model_ema_warmup": (False, bool, "EMA decay warmup"),
    "best_metric": ("top1", str, "top1 | ema_top1: what best.pth tracks"),
    # execution
    "amp": ("none", str, "none | bf16 | fp16 (fp16 uses a GradScaler)"),
    "channels_last": (False, bool, "channels_last memory format"),
    "grad_checkpointing": (False, bool, "activation checkpointing (model.set_grad_checkpointing)"),
    "compile": (False, bool, "torch.compile the model"),
    "compile_mode": (None, str, "torch.compile mode"),
    "device": ("auto", str, "auto | cpu | cuda"),
    "seed": (42, int, "random seed"),
    "nan_policy": ("stop", str, "non-finite loss: stop (naming the step) | skip (bounded by max_nan_skips)"),
    "max_nan_skips": (10, int, "with nan_policy=skip: stop after this many skipped steps"),
    # output
    "output": (None, str, "run folder (default runs/<model>-<time>)"),
    "resume": (None, str, "checkpoint to resume from, or 'auto' for <output>/last.pth"),
    "progress": (True, bool, "tqdm progress bar (else a log line every log_interval steps)"),
    "log_interval": (50, int, "steps between log lines without a progress bar"),
}


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``--config`` plus one flag per key of CONFIG_SPEC."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-c", "--config", default=None, help="YAML file of config keys (flags override it)")
    for key, (default, kind, text) in CONFIG_SPEC.items():
        flag = "--" + key.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif kind == "floats":
            p.add_argument(flag, dest=key, type=float, nargs="+", default=default, help=text)
        elif kind == "kwargs":
            p.add_argument(flag, dest=key, type=_kwargs, nargs="*", default=default, metavar="KEY=VALUE", help=text)
        else:
            p.add_argument(flag, dest=key, type=_optional(kind), default=default, help=text)
    return p


def _check_types(cfg: dict, source: str) -> None:
    for key, value in cfg.items():
        default, kind, _ = CONFIG_SPEC[key]
        if value is None:
            continue
        ok = {
            bool: isinstance(value, bool),
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            str: isinstance(value, str),
            "floats": isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value),
            "kwargs": isinstance(value, dict),
        }[kind]
        if not ok:
            name = kind if isinstance(kind, str) else kind.__name__
            raise ValueError(f"{source}: `{key}` must be {name}, got {value!r}")


def parse_config(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults <- YAML (``--config``) <- command line; checks keys and values."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        if not os.path.isfile(pre.config):
            raise ValueError(f"--config: no such file {pre.config!r}")
        with open(pre.config, encoding="utf-8") as f:
            file_cfg = yaml.safe_load(f) or {}
        if not isinstance(file_cfg, dict):
            raise ValueError(f"--config {pre.config}: expected a mapping of keys to values, got {type(file_cfg).__name__}")
        unknown = sorted(set(file_cfg) - set(CONFIG_SPEC))
        if unknown:
            raise ValueError(f"--config {pre.config}: unknown keys {unknown}; valid keys: {sorted(CONFIG_SPEC)}")
        for key, value in file_cfg.items():
            # YAML 1.1 reads 1e-3 (no dot) as a string: take it as the number it is meant to be
            if key in CONFIG_SPEC and CONFIG_SPEC[key][1] in (int, float) and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    file_cfg[key] = CONFIG_SPEC[key][1](float(value)) if CONFIG_SPEC[key][1] is int else float(value)
        _check_types(file_cfg, f"--config {pre.config}")
        parser.set_defaults(**file_cfg)
    cfg = parser.parse_args(argv)
    if isinstance(cfg.model_kwargs, list):  # key=value pairs from the command line, merged over the file's
        merged = dict(parser.get_default("model_kwargs") or {})
        for item in cfg.model_kwargs:
            merged.update(item)
        cfg.model_kwargs = merged
    validate_config(cfg)
    return cfg


def validate_config(cfg: argparse.Namespace) -> None:
    """Clear errors for values that would fail later and obscurely."""
    from vssm.data import DATASETS

    if not cfg.model:
        raise ValueError("`model` is required (a timm model name, e.g. vim_tiny_patch16_224)")
    if cfg.dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {cfg.dataset!r}")
    if cfg.dataset == "imagefolder" and not cfg.data_dir:
        raise ValueError("`data_dir` is required with dataset=imagefolder (a folder holding train/ and val/)")
    if cfg.amp is None:  # `--amp none` reads as None
        cfg.amp = "none"
    if cfg.amp not in AMP_DTYPES:
        raise ValueError(f"`amp` must be one of {tuple(AMP_DTYPES)}, got {cfg.amp!r}")
    if cfg.nan_policy not in NAN_POLICIES:
        raise ValueError(f"`nan_policy` must be one of {NAN_POLICIES}, got {cfg.nan_policy!r}")
    if cfg.best_metric not in ("top1", "ema_top1"):
        raise ValueError(f"`best_metric` must be 'top1' or 'ema_top1', got {cfg.best_metric!r}")
    if cfg.best_metric == "ema_top1" and not cfg.model_ema:
        raise ValueError("`best_metric: ema_top1` needs `model_ema: true`")
    for key in ("epochs", "batch_size", "accum_steps", "lr_base_batch", "synthetic_samples", "synthetic_val_samples"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"`{key}` must be >= 1, got {getattr(cfg, key)}")
    for key in ("workers", "warmup_epochs", "cooldown_epochs", "max_nan_skips"):
        if getattr(cfg, key) < 0:
            raise ValueError(f"`{key}` must be >= 0, got {getattr(cfg, key)}")
    if cfg.epoch_steps is not None and cfg.epoch_steps < 1:
        raise ValueError(f"`epoch_steps` must be >= 1 or unset, got {cfg.epoch_steps}")
    if (cfg.mixup > 0 or cfg.cutmix > 0) and cfg.batch_size % 2:
        raise ValueError(f"mixup/cutmix need an even `batch_size`, got {cfg.batch_size}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"`device` must be auto, cpu or cuda, got {cfg.device!r}")


def config_dict(cfg: argparse.Namespace) -> dict:
    return {k: getattr(cfg, k) for k in CONFIG_SPEC}


# ----------------------------------------------------------------------------------------------
# distributed


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Join the torchrun process group if launched by torchrun (NCCL on GPUs, gloo on CPU)."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda, but no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local, dev)


def all_reduce_sum(values: list[float], d: Dist) -> list[float]:
    """Sum of each value over ranks (float64 on the rank's device)."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.tolist()


# ----------------------------------------------------------------------------------------------
# checkpoints


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not ours, or for another model."""


def atomic_save(obj: Any, path: str) -> None:
    """torch.save to a temporary file beside ``path``, fsync, then rename over it (never a half file)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; unreadable files raise CheckpointError."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        # official Vim/DeiT-style files also pickle their argparse.Namespace of training args: allow that one class
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickled code objects, ...
        raise CheckpointError(
            f"checkpoint {path!r} could not be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "the file is corrupt, truncated, or not a torch checkpoint"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(obj).__name__}, expected a dict")
    return obj


def is_training_checkpoint(ckpt: dict) -> bool:
    return ckpt.get("format") == CHECKPOINT_FORMAT


def load_weights(model: nn.Module, state_dict: dict, source: str) -> None:
    """``load_state_dict(strict=True)`` with a readable account of what does not match."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for name, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{len(items)} {name}: {items[:5]}{more}")
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def rng_state() -> dict:
    """RNG states of python, numpy, torch CPU and the current CUDA device (weights_only-loadable)."""
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _all_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


# ----------------------------------------------------------------------------------------------
# model and data


def create_model(cfg: argparse.Namespace, num_classes: int) -> nn.Module:
    """timm.create_model with the config's model, classes, drop rates, image size and kwargs."""
    kwargs = dict(cfg.model_kwargs or {})
    kwargs.update(num_classes=num_classes, drop_rate=cfg.drop, drop_path_rate=cfg.drop_path)
    if cfg.pretrained_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=cfg.pretrained_file)
    pretrained = bool(cfg.pretrained or cfg.pretrained_file)
    return _cli.create_model(cfg.model, cfg.img_size, pretrained=pretrained, **kwargs)


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


def _seed_worker(worker_id: int) -> None:
    # torch seeds python's and its own RNG per worker; numpy (used by some augmentations) too
    np.random.seed(torch.initial_seed() % 2**32)


def build_loaders(cfg: argparse.Namespace, train_ds, val_ds, d: Dist):
    from timm.data.distributed_sampler import RepeatAugSampler
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    if cfg.repeated_aug:
        sampler = RepeatAugSampler(train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True)
    else:
        # also with one process: the order depends only on (seed, epoch), which makes resuming exact
        sampler = DistributedSampler(train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.seed)
    pin = cfg.pin_mem and d.device.type == "cuda"
    # fresh workers each epoch: their seeds come from the main process's torch RNG, which a resume
    # restores, so augmentations after a resume are the ones the uninterrupted run drew
    train_loader = DataLoader(
        train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, pin_memory=pin,
        drop_last=True, persistent_workers=False, worker_init_fn=_seed_worker,
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"the training set has {len(train_ds)} samples, fewer than one batch of {cfg.batch_size} per rank "
            f"on {d.world_size} rank(s): lower `batch_size`"
        )
    # each rank scores a disjoint share of the val set; the sums are reduced, so nothing is counted twice
    val_part = Subset(val_ds, list(range(d.rank, len(val_ds), d.world_size)))
    val_loader = DataLoader(
        val_part, batch_size=cfg.val_batch_size or 2 * cfg.batch_size, shuffle=False, num_workers=cfg.workers,
        pin_memory=pin, persistent_workers=cfg.workers > 0,
    )
    return train_loader, val_loader, sampler


# ----------------------------------------------------------------------------------------------
# train and evaluate


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf (and the policy says stop, or too many steps were skipped)."""


def _autocast(device: torch.device, amp: str):
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, loader, d: Dist, amp: str = "none", channels_last: bool = False) -> dict:
    """Mean cross-entropy, top-1 and top-5 (in %) over the loader, summed over ranks."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=d.device)  # loss, top-1 hits, top-5 hits, count
    for x, y in loader:
        x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(d.device, amp):
            out = model(x)
        out = out.float()
        hits = out.topk(min(5, out.shape[1]), dim=1).indices.eq(y[:, None])
        sums += torch.stack([nn.functional.cross_entropy(out, y, reduction="sum"), hits[:, :1].sum(), hits.sum(),
                             torch.tensor(y.shape[0], device=d.device)]).to(torch.float64)
    if d.enabled:
        dist.all_reduce(sums)
    loss_sum, correct1, correct5, count = sums.tolist()
    model.train(was_training)
    if count == 0:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "count": 0}
    return {"loss": loss_sum / count, "top1": 100.0 * correct1 / count, "top5": 100.0 * correct5 / count,
            "count": int(count)}


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer updates so far
    skipped: int = 0  # non-finite steps skipped
    best_metric: float | None = None
    best_epoch: int | None = None


def train_one_epoch(ctx: dict, epoch: int, state: TrainState) -> dict:
    """One pass over the training loader; returns mean loss, img/s and time."""
    from tqdm import tqdm

    cfg, d = ctx["cfg"], ctx["dist"]
    model, ddp, optimizer, scaler = ctx["train_model"], ctx["ddp"], ctx["optimizer"], ctx["scaler"]
    loader, sched, ema, criterion, mixup = ctx["train_loader"], ctx["scheduler"], ctx["ema"], ctx["criterion"], ctx["mixup"]
    steps = ctx["batches_per_epoch"]
    accum = cfg.accum_steps
    params = [p for p in ctx["model"].parameters() if p.requires_grad]

    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), dtype=torch.float64, device=d.device)
    seen = done = 0
    window_start = 0
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{ctx['total_epochs']}", disable=not (d.is_main and cfg.progress),
               dynamic_ncols=True, leave=False)
    for i, (x, y) in enumerate(loader):
        if i >= steps:
            break
        # the last window of an epoch may be short; the loss is averaged over the batches it has
        window = min(accum, steps - window_start)
        last_in_window = i - window_start + 1 == window
        x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
        if mixup is not None:
            x, y = mixup(x, y)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(d.device, cfg.amp):
            out = model(x)
            loss = criterion(out, y)
        finite = torch.isfinite(loss.detach()).to(torch.float64)
        if d.enabled:  # every rank must take the same branch, or the next all-reduce hangs
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not bool(finite):
            where = f"epoch {epoch + 1}, batch {i + 1}/{steps}, optimizer step {state.step + 1}"
            if cfg.nan_policy == "stop":
                raise NonFiniteLossError(
                    f"non-finite loss ({float(loss.detach()):.4g}) at {where}; stopping (last.pth keeps the last "
                    "good epoch). Try a lower lr, clip_grad, amp=bf16 instead of fp16, or nan_policy=skip."
                )
            state.skipped += 1
            if state.skipped > cfg.max_nan_skips:
                raise NonFiniteLossError(
                    f"non-finite loss at {where}: {state.skipped} steps skipped, more than max_nan_skips="
                    f"{cfg.max_nan_skips}; stopping"
                )
            if d.is_main:
                print(f"warning: non-finite loss at {where}; skipped ({state.skipped}/{cfg.max_nan_skips})",
                      file=sys.stderr)
            optimizer.zero_grad(set_to_none=True)  # drop the window's partial gradients too
            window_start = i + 1
            bar.update(1)
            continue
        sync = ddp.no_sync() if (ddp is not None and not last_in_window) else contextlib.nullcontext()
        with sync:
            scaled = loss / window
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_sum += loss.detach().to(torch.float64)
        seen += x.shape[0]
        if last_in_window:
            if scaler is not None:
                if cfg.clip_grad:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                scaler.step(optimizer)
                scaler.update()
            else:
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            sched.step_update(num_updates=state.step)
            if ema is not None:
                ema.update(ctx["model"], step=state.step)
            window_start = i + 1
        done += 1
        show_bar = not bar.disable and (done % 10 == 1 or i + 1 == steps)  # postfix reads sync the device
        show_line = bar.disable and d.is_main and not cfg.progress and (i + 1) % cfg.log_interval == 0
        if show_bar or show_line:
            elapsed = time.perf_counter() - t0
            ips = seen * d.world_size / max(elapsed, 1e-9)
            lr = optimizer.param_groups[0]["lr"]
            running = float(loss_sum) / done
            if show_bar:
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.0f}", refresh=False)
            else:
                print(f"epoch {epoch + 1} [{i + 1}/{steps}] loss {running:.4f} lr {lr:.3e} {ips:.0f} img/s", flush=True)
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - t0
    batches = [float(loss_sum), float(seen)]
    total_loss, total_seen = all_reduce_sum(batches, d)
    batches_done = total_seen / cfg.batch_size
    return {"train_loss": total_loss / max(batches_done, 1.0), "train_img_per_s": total_seen / max(elapsed, 1e-9),
            "epoch_time_s": elapsed}


# ----------------------------------------------------------------------------------------------
# metrics, plot, checkpoint state


METRIC_KEYS = ("epoch", "step", "lr", "train_loss", "train_img_per_s", "epoch_time_s", "val_loss", "val_top1",
               "val_top5", "ema_val_loss", "ema_val_top1", "ema_val_top5", "skipped_steps")


def write_metrics(history: list[dict], out: str) -> None:
    """Rewrite metrics.csv and metrics.jsonl from the whole history (resuming keeps them consistent)."""
    import csv

    keys = [k for k in METRIC_KEYS if any(k in row for row in history)]
    for name, writer in (("metrics.csv", "csv"), ("metrics.jsonl", "jsonl")):
        path = os.path.join(out, name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if writer == "csv":
                w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
                w.writeheader()
                w.writerows(history)
            else:
                for row in history:
                    f.write(json.dumps(row) + "\n")
        os.replace(tmp, path)


def plot_metrics(history: list[dict], path: str, title: str) -> None:
    """Loss (train, val) and val top-1 (and EMA) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax1.plot(epochs, [r["val_loss"] for r in history], "o-", label="val")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, [r["val_top1"] for r in history], "o-", label="val top-1")
    if any("ema_val_top1" in r for r in history):
        ax2.plot(epochs, [r.get("ema_val_top1", float("nan")) for r in history], "o-", label="EMA val top-1")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("top-1 (%)")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _gather_rng(d: Dist) -> list[dict]:
    mine = rng_state()
    if not d.enabled:
        return [mine]
    states: list[Any] = [None] * d.world_size
    dist.all_gather_object(states, mine)
    return states


def checkpoint_dict(ctx: dict, state: TrainState, history: list[dict], rngs: list[dict]) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_name": ctx["cfg"].model,
        "config": config_dict(ctx["cfg"]),
        "num_classes": ctx["num_classes"],
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in ctx["data_config"].items()},
        "epoch": state.epoch,
        "step": state.step,
        "skipped_steps": state.skipped,
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "model": ctx["model"].state_dict(),
        "ema": ctx["ema"].module.state_dict() if ctx["ema"] is not None else None,
        "optimizer": ctx["optimizer"].state_dict(),
        "scheduler": ctx["scheduler"].state_dict(),
        "scaler": ctx["scaler"].state_dict() if ctx["scaler"] is not None else None,
        "world_size": ctx["dist"].world_size,
        "rng": rngs,
        "history": history,
    }


# settings baked into the optimizer/scheduler state: a resume must not change them
SCHEDULE_KEYS = ("epochs", "sched", "lr", "base_lr", "lr_base_batch", "warmup_epochs", "warmup_lr", "warmup_prefix",
                 "min_lr", "cooldown_epochs", "batch_size", "accum_steps", "epoch_steps", "opt")


def restore(ctx: dict, ckpt: dict, path: str) -> tuple[TrainState, list[dict]]:
    """Put a training checkpoint's states back into the run; clear errors when it does not fit."""
    cfg, d = ctx["cfg"], ctx["dist"]
    if not is_training_checkpoint(ckpt):
        raise CheckpointError(
            f"{path!r} is not a training checkpoint of tools/train.py (no format={CHECKPOINT_FORMAT!r}); to start "
            "from plain weights use `pretrained_file` instead of `resume`"
        )
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path!r} has checkpoint version {ckpt.get('version')}, this code reads <= {CHECKPOINT_VERSION}")
    if ckpt.get("model_name") != cfg.model:
        raise CheckpointError(f"{path!r} was written for model {ckpt.get('model_name')!r}, this run builds {cfg.model!r}")
    load_weights(ctx["model"], ckpt["model"], f"checkpoint {path!r}")
    if ctx["ema"] is not None:
        if ckpt.get("ema") is None:
            raise CheckpointError(f"{path!r} has no EMA weights, but this run has model_ema on")
        load_weights(ctx["ema"].module, ckpt["ema"], f"EMA weights of {path!r}")
    saved = ckpt.get("config") or {}
    changed = [f"{k}: {saved[k]!r} -> {getattr(cfg, k)!r}" for k in SCHEDULE_KEYS
               if k in saved and saved[k] != getattr(cfg, k, saved[k])]
    if changed:
        raise CheckpointError(
            f"{path!r} was trained with another schedule ({'; '.join(changed)}); the restored scheduler would "
            "silently keep the old one. Resume with the run's own settings, or start a new run from its weights "
            "with `pretrained_file`"
        )
    try:
        ctx["optimizer"].load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimizer state of {path!r} does not fit this run's optimizer: {e}") from e
    ctx["scheduler"].load_state_dict(ckpt["scheduler"])
    if ctx["scaler"] is not None and ckpt.get("scaler"):
        ctx["scaler"].load_state_dict(ckpt["scaler"])
    rngs = ckpt.get("rng") or []
    if len(rngs) == d.world_size:
        set_rng_state(rngs[d.rank])
    elif d.is_main:
        print(f"warning: {path} was written by {len(rngs)} rank(s), this run has {d.world_size}: RNG states are "
              "not restored, so the run continues on a different random stream", file=sys.stderr)
    state = TrainState(epoch=ckpt["epoch"], step=ckpt["step"], skipped=ckpt.get("skipped_steps", 0),
                       best_metric=ckpt.get("best_metric"), best_epoch=ckpt.get("best_epoch"))
    return state, list(ckpt.get("history") or [])


# ----------------------------------------------------------------------------------------------
# the run


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def train(cfg: argparse.Namespace) -> dict:
    """Run the training the config describes; returns the summary (also written to summary.json)."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3

    d = init_distributed(cfg.device)
    t_start = time.time()
    if cfg.resume == "auto" and not cfg.output:
        raise ValueError("resume: 'auto' resumes <output>/last.pth, so it needs `output` (the run folder)")
    out = cfg.output or os.path.join("runs", f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg.output = out
    if not cfg.resume and os.path.isfile(os.path.join(out, "last.pth")):
        raise ValueError(
            f"output: {out!r} already holds a run (last.pth); pass `--resume auto` to continue it, or choose "
            "another --output (nothing is overwritten)"
        )
    if cfg.resume and cfg.resume != "auto" and not os.path.isfile(cfg.resume):
        raise CheckpointError(f"checkpoint {cfg.resume!r} does not exist")
    if d.is_main:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(config_dict(cfg), f, sort_keys=False)

    # the same seed on every rank for the model, so the EMA copies start identical; per-rank after
    _seed_all(cfg.seed)
    num_classes = dataset_classes(cfg)
    model = create_model(cfg, num_classes)
    data_config = data_config_for(cfg, model)
    if cfg.grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ValueError(f"grad_checkpointing: model {cfg.model!r} has no set_grad_checkpointing()")
        model.set_grad_checkpointing(True)
    model.to(d.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = None
    if cfg.model_ema:
        ema = ModelEmaV3(model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup)
    _seed_all(cfg.seed + d.rank)

    train_ds, val_ds = build_datasets(cfg, data_config)
    train_loader, val_loader, sampler = build_loaders(cfg, train_ds, val_ds, d)
    batches_per_epoch = len(train_loader) if cfg.epoch_steps is None else min(cfg.epoch_steps, len(train_loader))
    updates_per_epoch = math.ceil(batches_per_epoch / cfg.accum_steps)

    global_batch = cfg.batch_size * cfg.accum_steps * d.world_size
    lr = cfg.lr if cfg.lr is not None else cfg.base_lr * global_batch / cfg.lr_base_batch
    opt_kwargs = dict(eps=cfg.opt_eps)
    if cfg.opt_betas:
        opt_kwargs["betas"] = tuple(cfg.opt_betas)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                                    filter_bias_and_bn=True, **opt_kwargs)
    scheduler, total_epochs = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs, warmup_lr=cfg.warmup_lr,
        min_lr=cfg.min_lr, warmup_prefix=cfg.warmup_prefix, cooldown_epochs=cfg.cooldown_epochs, step_on_epochs=False, updates_per_epoch=updates_per_epoch,
    )
    scaler = torch.amp.GradScaler(d.device.type) if cfg.amp == "fp16" else None

    mixup = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                      switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode, label_smoothing=cfg.smoothing,
                      num_classes=num_classes)
        criterion: nn.Module = SoftTargetCrossEntropy()  # mixup already smooths the targets
    elif cfg.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    else:
        criterion = nn.CrossEntropyLoss()

    ddp = None
    train_model: nn.Module = model
    if d.enabled:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
        train_model = ddp
    if cfg.compile:
        train_model = torch.compile(train_model, mode=cfg.compile_mode)

    ctx = dict(cfg=cfg, dist=d, model=model, train_model=train_model, ddp=ddp, optimizer=optimizer, scheduler=scheduler,
               scaler=scaler, ema=ema, criterion=criterion, mixup=mixup, train_loader=train_loader,
               batches_per_epoch=batches_per_epoch, total_epochs=total_epochs, num_classes=num_classes,
               data_config=data_config)

    state, history = TrainState(), []
    resume = cfg.resume
    if resume == "auto":
        candidate = os.path.join(out, "last.pth")
        resume = candidate if os.path.isfile(candidate) else None
    if resume:
        state, history = restore(ctx, load_checkpoint(resume), resume)
        if d.is_main:
            print(f"resumed from {resume}: {state.epoch} epoch(s), {state.step} step(s) done", flush=True)

    n_params = sum(p.numel() for p in model.parameters())
    if d.is_main:
        print(f"model {cfg.model}: {n_params / 1e6:.2f}M params, {num_classes} classes, input {tuple(data_config['input_size'])}; "
              f"{len(train_ds)} train / {len(val_ds)} val images; {d.world_size} process(es) on {d.device.type}; "
              f"global batch {global_batch}, lr {lr:.3g}; {total_epochs} epochs x {updates_per_epoch} steps", flush=True)

    paths = {k: os.path.join(out, v) for k, v in (("last", "last.pth"), ("best", "best.pth"), ("plot", "plot.png"),
                                                  ("metrics", "metrics.csv"), ("summary", "summary.json"),
                                                  ("config", "config.yaml"))}
    last_row: dict = history[-1] if history else {}
    epoch_times: list[float] = []
    for epoch in range(state.epoch, total_epochs):
        sampler.set_epoch(epoch)
        stats = train_one_epoch(ctx, epoch, state)
        scheduler.step(epoch + 1)
        # the bare model: under DDP, ranks may hold different numbers of val batches, and DDP's
        # forward broadcasts buffers (BatchNorm) collectively, which would then hang
        val = evaluate(model, val_loader, d, cfg.amp, cfg.channels_last)
        row = {"epoch": epoch + 1, "step": state.step, "lr": optimizer.param_groups[0]["lr"], **stats,
               "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"], "skipped_steps": state.skipped}
        if ema is not None:
            ev = evaluate(ema.module, val_loader, d, cfg.amp, cfg.channels_last)
            row.update(ema_val_loss=ev["loss"], ema_val_top1=ev["top1"], ema_val_top5=ev["top5"])
        state.epoch = epoch + 1
        history.append(row)
        last_row = row
        metric = row["val_top1"] if cfg.best_metric == "top1" else row["ema_val_top1"]
        improved = state.best_metric is None or (math.isfinite(metric) and metric > state.best_metric)
        if improved:
            state.best_metric, state.best_epoch = metric, epoch + 1
        # every rank holds the same weights, so every rank stops here together
        if not _all_finite(model) or (ema is not None and not _all_finite(ema.module)):
            raise NonFiniteLossError(
                f"the weights hold NaN/Inf after epoch {epoch + 1} (step {state.step}); not saving over "
                f"{paths['last']}, which keeps the last good epoch"
            )
        rngs = _gather_rng(d)  # collective: every rank takes part
        if d.is_main:
            ckpt = checkpoint_dict(ctx, state, history, rngs)
            # best first: a kill between the two writes then leaves last.pth one epoch behind (resume redoes it),
            # never a last.pth whose best_epoch names weights that best.pth does not hold
            if improved:
                atomic_save(ckpt, paths["best"])
            atomic_save(ckpt, paths["last"])
            write_metrics(history, out)
            kw = ", ".join(f"{k}={v}" for k, v in (cfg.model_kwargs or {}).items())
            plot_metrics(history, paths["plot"], f"{cfg.model}" + (f" ({kw})" if kw else "") + f" on {cfg.dataset}")
            epoch_times.append(stats["epoch_time_s"])
            eta = (total_epochs - epoch - 1) * (sum(epoch_times) / len(epoch_times))
            ema_txt = f", EMA top-1 {row['ema_val_top1']:.2f}%" if ema is not None else ""
            print(f"epoch {epoch + 1}/{total_epochs}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}, "
                  f"val top-1 {row['val_top1']:.2f}%{ema_txt}, top-5 {row['val_top5']:.2f}%, lr {row['lr']:.2e}, "
                  f"{stats['train_img_per_s']:.0f} img/s, {stats['epoch_time_s']:.1f}s, ETA {_fmt_time(eta)}", flush=True)
        if d.enabled:
            dist.barrier()  # nobody races ahead (or exits) while rank 0 is still writing

    summary = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "epochs": state.epoch,
        "steps": state.step,
        "params": n_params,
        "num_classes": num_classes,
        "final_top1": last_row.get("val_top1"),
        "final_top5": last_row.get("val_top5"),
        "final_ema_top1": last_row.get("ema_val_top1"),
        "best_top1": state.best_metric,
        "best_metric": cfg.best_metric,
        "best_epoch": state.best_epoch,
        "skipped_steps": state.skipped,
        "world_size": d.world_size,
        "device": d.device.type,
        "train_time_s": time.time() - t_start,
        "output": out,
        "checkpoint_last": paths["last"],
        "checkpoint_best": paths["best"],
        "plot": paths["plot"],
        "metrics_csv": paths["metrics"],
        "config": paths["config"],
    }
    if d.is_main:
        with open(paths["summary"], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
        print(f"done in {_fmt_time(summary['train_time_s'])}: final val top-1 {summary['final_top1']:.2f}% "
              f"(best {summary['best_top1']:.2f}% at epoch {summary['best_epoch']})", flush=True)
        print(f"plot:       {paths['plot']}\ncheckpoint: {paths['best']} (best), {paths['last']} (last)\n"
              f"summary:    {paths['summary']}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    try:
        train(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    _cli.run_main(main, (ValueError, NonFiniteLossError))  # user-facing errors: one clear line
