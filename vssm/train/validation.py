"""Score a model on a val split: a training checkpoint of vssm.train, an official weights file, or timm's
pretrained weights. ``tools/validate.py`` is its command line."""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from vssm.train.build import COMPILE_MODES, compiled, create_model
from vssm.train.checkpoint import (
    CheckpointError,
    is_training_checkpoint,
    load_checkpoint,
    load_weights,
    official_state_dict,
    weights_of,
)
from vssm.train.config import AMP_DTYPE_NAMES, KwargsAction
from vssm.train.engine import Dist, evaluate

__all__ = ["build_parser", "main", "validate"]


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default=None, help="timm model name (default: from a training checkpoint)")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KwargsAction, metavar="KEY=VALUE",
                   help="extra create_model kwargs")
    p.add_argument("--checkpoint", default=None, help="training checkpoint or official weights file")
    p.add_argument("--ema", action="store_true", help="score the EMA weights of a training checkpoint")
    p.add_argument("--pretrained", action="store_true", help="timm's pretrained weights (no --checkpoint)")
    p.add_argument("--dataset", default=None,
                   help="imagefolder | digits | synthetic (default: the training run's, else imagefolder)")
    p.add_argument("--data-dir", default=None, help="ImageFolder root with val/ (or validation/) (default: the run's)")
    p.add_argument("--num-classes", type=int, default=None, help="classes (default: checkpoint's or 1000)")
    p.add_argument("--img-size", type=int, default=None, help="input side (default: checkpoint's / pretrained_cfg)")
    p.add_argument("--crop-pct", type=float, default=None, help="center-crop fraction (default: pretrained_cfg)")
    p.add_argument("--interpolation", default=None, help="resize interpolation (default: pretrained_cfg)")
    p.add_argument("--batch-size", type=int, default=128, help="images per batch (default: 128)")
    p.add_argument("--workers", type=int, default=4, help="data loader worker processes (default: 4)")
    p.add_argument("--amp", default="none", choices=list(AMP_DTYPE_NAMES), help="autocast dtype (default: none)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES,
                   help="torch.compile the model in this mode (bare flag: default; 'reduce-overhead': CUDA graphs)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: auto)")
    p.add_argument("--synthetic-samples", type=int, default=None,
                   help="synthetic val images (default: the training run's, else 256)")
    p.add_argument("--json-out", default=None, help="also write the result here")
    return p


def validate(args: argparse.Namespace | None = None, **kwargs) -> dict:
    """Build the model, load the weights, score the val split; returns the result dict. Takes the parsed
    command line, or its options as keywords (``validate(checkpoint="best.pth", workers=0)``)."""
    from timm.data import create_transform, resolve_data_config
    from torch.utils.data import DataLoader

    from vssm.data import build_dataset

    if args is None:
        args = build_parser().parse_args([])
    args = argparse.Namespace(**{**vars(args), **kwargs})
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is available")
    device = torch.device("cuda" if (args.device != "cpu" and torch.cuda.is_available()) else "cpu")
    ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else None
    training = ckpt is not None and is_training_checkpoint(ckpt)
    kwargs = dict(args.model_kwargs or {})
    name, num_classes, img_size = args.model, args.num_classes, args.img_size
    dataset, data_dir = args.dataset, args.data_dir
    if training:
        cfg = ckpt["config"]
        name = name or ckpt["model_name"]
        if name != ckpt["model_name"]:
            raise CheckpointError(f"{args.checkpoint!r} holds a {ckpt['model_name']!r}, not the requested {name!r}")
        kwargs = {**(cfg.get("model_kwargs") or {}), **kwargs}
        num_classes = num_classes or ckpt["num_classes"]
        img_size = img_size or ckpt["data_config"]["input_size"][-1]
        if dataset is None:  # score on what the run was validated on
            dataset = cfg.get("dataset") or "imagefolder"
            data_dir = data_dir or cfg.get("data_dir")
    dataset = dataset or "imagefolder"
    if not name:
        raise ValueError("--model is required unless --checkpoint is a training checkpoint of vssm.train")
    if args.ema and not training:
        raise ValueError("--ema needs a training checkpoint of vssm.train")
    if dataset == "digits":
        num_classes = num_classes or 10
    if num_classes:
        kwargs["num_classes"] = num_classes

    model = create_model(name, img_size, pretrained=args.pretrained, **kwargs)
    if ckpt is not None and not training:
        load_weights(model, official_state_dict(ckpt, model), f"checkpoint {args.checkpoint!r}")
    if training:
        key = "ema" if args.ema else "model"
        weights = weights_of(ckpt, ema=args.ema)
        if weights is None:
            raise CheckpointError(f"{args.checkpoint!r} has no {key} weights")
        load_weights(model, weights, f"{key} weights of {args.checkpoint!r}")

    data_args = {"img_size": img_size, "crop_pct": args.crop_pct, "interpolation": args.interpolation}
    if training:  # the eval preprocessing the run used, unless overridden
        saved = ckpt["data_config"]
        data_args = {"input_size": tuple(saved["input_size"]), "crop_pct": args.crop_pct or saved["crop_pct"],
                     "interpolation": args.interpolation or saved["interpolation"], "mean": saved["mean"],
                     "std": saved["std"]}
        if args.img_size:
            data_args["input_size"] = (saved["input_size"][0], args.img_size, args.img_size)
    data_config = resolve_data_config({k: v for k, v in data_args.items() if v is not None}, model=model)
    transform = None
    if dataset != "synthetic":
        transform = create_transform(
            data_config["input_size"], is_training=False, interpolation=data_config["interpolation"],
            mean=data_config["mean"], std=data_config["std"], crop_pct=data_config["crop_pct"],
            crop_mode=data_config.get("crop_mode"),
        )
    size = data_config["input_size"]
    samples = args.synthetic_samples or (ckpt["config"]["synthetic_val_samples"] if training else 256)
    ds = build_dataset(dataset, "val", root=data_dir, transform=transform, img_size=size[-1],
                       num_classes=num_classes or 1000, num_samples=samples, in_chans=size[0],
                       seed=(ckpt["config"]["seed"] if training else 0))
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                        pin_memory=device.type == "cuda")

    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    res = evaluate(compiled(model, args.compile), loader, Dist(device=device), amp=args.amp,
                   channels_last=args.channels_last)
    elapsed = time.perf_counter() - t0
    return {
        "model": name,
        "checkpoint": args.checkpoint,
        "weights": ("ema" if args.ema else "model") if training else ("official" if ckpt is not None else
                                                                        "pretrained" if args.pretrained else "random"),
        "dataset": dataset,
        "num_images": res["count"],
        "top1": res["top1"],
        "top5": res["top5"],
        "loss": res["loss"],
        "input_size": list(size),
        "crop_pct": data_config["crop_pct"],
        "interpolation": data_config["interpolation"],
        "amp": args.amp,
        "device": device.type,
        "img_per_s": res["count"] / max(elapsed, 1e-9),
    }


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    args = build_parser(description).parse_args(argv)
    result = validate(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0
