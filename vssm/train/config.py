"""The training configuration: one table of keys, read from defaults <- YAML file <- command line.

Every key is also a flag (``lr_base_size`` -> ``--lr-base-size``); ``parse_config`` checks names, types and
values before anything is built or written, so a bad argument fails with one clear line and leaves no files.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import warnings
from typing import Any

import yaml
from timm.utils import ParseKwargs

__all__ = ["AMP_DTYPE_NAMES", "CONFIG_SPEC", "NAN_POLICIES", "build_parser", "config_dict", "parse_config",
           "resolve_lr", "upgrade_config", "validate_config"]

AMP_DTYPE_NAMES = ("none", "bf16", "fp16")
NAN_POLICIES = ("stop", "skip")
LR_BASE_SCALES = ("", "linear", "sqrt")

# Keys of earlier config files and checkpoints, read as today's names. They meant linear scaling
# ("lr = base_lr * global batch / lr_base_batch"), so a file that uses them keeps it.
RENAMED = {"base_lr": "lr_base", "lr_base_batch": "lr_base_size"}


def _optional(kind):
    """argparse type that also accepts none/null (to clear a value set by the YAML file)."""

    def convert(text: str):
        if text.strip().lower() in ("none", "null", "~"):
            return None
        return kind(text)

    convert.__name__ = kind.__name__
    return convert


class KwargsAction(ParseKwargs):
    """timm's ``key=value`` parser (values read as Python literals), with a clear error for a missing ``=``."""

    def __call__(self, parser, namespace, values, option_string=None):
        bad = [v for v in values if v and "=" not in v]
        if bad:
            parser.error(f"{option_string}: expected KEY=VALUE, got {bad[0]!r}")
        super().__call__(parser, namespace, values, option_string)


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
    "scale": (None, "floats", "random-resized-crop scale range (default: 0.08 1.0)"),
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
    "val_batch_size": (None, int, "validation batch size per rank (default: 2x batch_size)"),
    "accum_steps": (1, int, "gradient accumulation steps"),
    "opt": ("adamw", str, "optimizer (timm.optim name)"),
    "lr": (None, float, "absolute learning rate (default: lr_base scaled to the global batch)"),
    "lr_base": (5e-4, float, "learning rate at a global batch of lr_base_size (timm's convention)"),
    "lr_base_size": (512, int, "global batch size lr_base refers to"),
    "lr_base_scale": ("", str, "linear | sqrt | '' (timm's rule: sqrt for Ada*/LAMB optimizers, else linear)"),
    "weight_decay": (0.05, float, "weight decay (not on norms, biases, model.no_weight_decay())"),
    "opt_eps": (1e-8, float, "optimizer epsilon"),
    "opt_betas": (None, "floats", "optimizer betas"),
    "momentum": (0.9, float, "SGD momentum"),
    "clip_grad": (None, float, "clip gradients to this (off when unset)"),
    "clip_mode": ("norm", str, "norm | value | agc (timm.utils.dispatch_clip_grad)"),
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
    "amp": ("none", str, "none | bf16 | fp16 (fp16 uses timm's NativeScaler)"),
    "channels_last": (False, bool, "channels_last memory format"),
    "grad_checkpointing": (False, bool, "activation checkpointing (model.set_grad_checkpointing)"),
    "compile": (False, bool, "torch.compile the model"),
    "compile_mode": (None, str, "torch.compile mode"),
    "device": ("auto", str, "auto | cpu | cuda"),
    "seed": (42, int, "random seed"),
    "nan_policy": ("stop", str, "non-finite loss: stop (naming the step) | skip (bounded by max_nan_skips)"),
    "max_nan_skips": (10, int, "with nan_policy=skip: stop after this many skipped steps"),
    # output
    "output": (None, str, "run folder (default: runs/<model>-<time>)"),
    "resume": (None, str, "checkpoint to resume from, or 'auto' for <output>/last.pth"),
    "progress": (True, bool, "tqdm progress bar (else a log line every log_interval steps)"),
    "log_interval": (50, int, "steps between log lines without a progress bar"),
}

# settings baked into the optimizer/scheduler state: a resume must not change them
SCHEDULE_KEYS = ("epochs", "sched", "lr", "lr_base", "lr_base_size", "lr_base_scale", "warmup_epochs", "warmup_lr",
                 "warmup_prefix", "min_lr", "cooldown_epochs", "batch_size", "accum_steps", "epoch_steps", "opt")


def _help(text: str, default: Any) -> str:
    """The key's help with its default, said once (texts that already name their default keep their own)."""
    if "default" in text or default in (None, "", {}):
        return text.replace("%", "%%")
    return f"{text} (default: {default})".replace("%", "%%")


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The command line: ``--config`` plus one flag per key of CONFIG_SPEC."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-c", "--config", default=None, help="YAML file of config keys (flags override it)")
    for key, (default, kind, text) in CONFIG_SPEC.items():
        flag = "--" + key.replace("_", "-")
        help_text = _help(text, default)
        if kind is bool:
            p.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif kind == "floats":
            p.add_argument(flag, dest=key, type=float, nargs="+", default=default, help=help_text)
        elif kind == "kwargs":
            p.add_argument(flag, dest=key, action=KwargsAction, nargs="*", default=default, metavar="KEY=VALUE",
                           help=help_text)
        else:
            p.add_argument(flag, dest=key, type=_optional(kind), default=default, help=help_text)
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


def upgrade_config(values: dict) -> dict:
    """A config mapping with earlier key names (``base_lr``, ``lr_base_batch``) read as today's."""
    out = dict(values)
    old = [k for k in RENAMED if k in out]
    for k in old:
        new = RENAMED[k]
        if new in out:
            raise ValueError(f"config: `{k}` is the earlier name of `{new}`; give one of them")
        out[new] = out.pop(k)
    if old and "lr_base_scale" not in out:
        out["lr_base_scale"] = "linear"
    return out


def parse_config(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """Defaults <- YAML (``--config``) <- command line; checks keys and values."""
    parser = build_parser(description)
    pre, _ = parser.parse_known_args(argv)
    file_kwargs: dict = {}
    if pre.config:
        if not os.path.isfile(pre.config):
            raise ValueError(f"--config: no such file {pre.config!r}")
        with open(pre.config, encoding="utf-8") as f:
            file_cfg = yaml.safe_load(f) or {}
        if not isinstance(file_cfg, dict):
            raise ValueError(f"--config {pre.config}: expected a mapping of keys to values, got {type(file_cfg).__name__}")
        file_cfg = upgrade_config(file_cfg)
        unknown = sorted(set(file_cfg) - set(CONFIG_SPEC))
        if unknown:
            raise ValueError(f"--config {pre.config}: unknown keys {unknown}; valid keys: {sorted(CONFIG_SPEC)}")
        for key, value in file_cfg.items():
            # YAML 1.1 reads 1e-3 (no dot) as a string: take it as the number it is meant to be
            if CONFIG_SPEC[key][1] in (int, float) and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    file_cfg[key] = CONFIG_SPEC[key][1](float(value)) if CONFIG_SPEC[key][1] is int else float(value)
        _check_types(file_cfg, f"--config {pre.config}")
        parser.set_defaults(**file_cfg)
        file_kwargs = dict(file_cfg.get("model_kwargs") or {})
    cfg = parser.parse_args(argv)
    # key=value pairs from the command line go over the file's
    cfg.model_kwargs = {**file_kwargs, **(cfg.model_kwargs or {})}
    validate_config(cfg)
    return cfg


def validate_config(cfg: argparse.Namespace) -> None:
    """Clear errors for values that would fail later and obscurely (nothing is built or written yet)."""
    from vssm.data import DATASETS

    if not cfg.model:
        raise ValueError("`model` is required (a timm model name, e.g. vim_tiny_patch16_224)")
    if cfg.dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {cfg.dataset!r}")
    if cfg.dataset == "imagefolder" and not cfg.data_dir:
        raise ValueError("`data_dir` is required with dataset=imagefolder (a folder holding train/ and val/)")
    if cfg.amp is None:  # `--amp none` reads as None
        cfg.amp = "none"
    if cfg.amp not in AMP_DTYPE_NAMES:
        raise ValueError(f"`amp` must be one of {AMP_DTYPE_NAMES}, got {cfg.amp!r}")
    if cfg.nan_policy not in NAN_POLICIES:
        raise ValueError(f"`nan_policy` must be one of {NAN_POLICIES}, got {cfg.nan_policy!r}")
    if cfg.lr_base_scale is None:
        cfg.lr_base_scale = ""
    if cfg.lr_base_scale not in LR_BASE_SCALES:
        raise ValueError(f"`lr_base_scale` must be one of {LR_BASE_SCALES}, got {cfg.lr_base_scale!r}")
    if cfg.clip_mode not in ("norm", "value", "agc"):
        raise ValueError(f"`clip_mode` must be norm, value or agc, got {cfg.clip_mode!r}")
    if cfg.best_metric not in ("top1", "ema_top1"):
        raise ValueError(f"`best_metric` must be 'top1' or 'ema_top1', got {cfg.best_metric!r}")
    if cfg.best_metric == "ema_top1" and not cfg.model_ema:
        raise ValueError("`best_metric: ema_top1` needs `model_ema: true`")
    for key in ("epochs", "batch_size", "accum_steps", "lr_base_size", "synthetic_samples", "synthetic_val_samples"):
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
    if cfg.resume == "auto" and not cfg.output:
        raise ValueError("resume: 'auto' resumes <output>/last.pth, so it needs `output` (the run folder)")
    _check_model_name(cfg.model)


def _check_model_name(name: str) -> None:
    import timm

    import vssm  # noqa: F401  (registers the vssm families with timm)

    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        raise ValueError(f"model: {name!r} is not a timm model" + (f"; did you mean {close}?" if close else ""))


def resolve_lr(cfg: argparse.Namespace, world_size: int = 1) -> float:
    """The run's peak learning rate: ``lr`` when set, else timm's rule ``lr_base * ratio`` with
    ``ratio = global batch / lr_base_size`` (its square root for Ada*/LAMB optimizers unless
    ``lr_base_scale`` says which). Warns when that lands below ``min_lr``: the cosine would then rise."""
    global_batch = cfg.batch_size * cfg.accum_steps * world_size
    if cfg.lr is not None:
        lr, how = cfg.lr, "lr"
    else:
        scale = cfg.lr_base_scale or ("sqrt" if any(o in cfg.opt.lower() for o in ("ada", "lamb")) else "linear")
        ratio = global_batch / cfg.lr_base_size
        lr = cfg.lr_base * (math.sqrt(ratio) if scale == "sqrt" else ratio)
        how = f"lr_base {cfg.lr_base:g} x {scale} ({global_batch}/{cfg.lr_base_size})"
    if lr < cfg.min_lr:
        warnings.warn(
            f"learning rate {lr:.3g} ({how}) is below min_lr {cfg.min_lr:.3g}: the schedule would rise instead of "
            "decay. Set `lr` directly, a larger batch, or a lower `min_lr`",
            UserWarning,
            stacklevel=2,
        )
    return lr


def config_dict(cfg: argparse.Namespace) -> dict:
    return {k: getattr(cfg, k) for k in CONFIG_SPEC}
