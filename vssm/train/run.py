"""``train(cfg)``: a whole run, from the config to the run folder.

The run folder gets ``last.pth`` (every epoch) and ``best.pth`` (best val top-1), ``metrics.csv`` (timm's
summary.csv columns) and ``metrics.jsonl`` (one row per epoch, the values an uninterrupted run and a resumed
one share bit for bit), ``plot.png`` (loss and top-1 curves, redrawn each epoch), the resolved
``config.yaml`` and, at the end, ``summary.json`` (with the timings). Nothing is written before the model,
the data and the optimizer are built (and a resumed checkpoint is restored), so a run that fails on its
arguments leaves no folder behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
import yaml

from vssm.train.build import (
    build_datasets,
    build_loaders,
    data_config_for,
    dataset_classes,
    loader_seed,
    model_from_config,
)
from vssm.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    atomic_save,
    epochs_done,
    is_training_checkpoint,
    load_checkpoint,
    load_weights,
    rng_state,
    set_rng_state,
    weights_of,
)
from vssm.train.config import SCHEDULE_KEYS, config_dict, resolve_lr, upgrade_config
from vssm.train.engine import (
    Dist,
    NonFiniteLossError,
    Parts,
    TrainState,
    evaluate,
    init_distributed,
    train_one_epoch,
)

__all__ = ["METRIC_KEYS", "checkpoint_dict", "plot_metrics", "restore", "train", "write_metrics"]

# the per-epoch values of metrics.jsonl: all reproducible (timings go to summary.json)
METRIC_KEYS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "ema_val_loss", "ema_val_top1",
               "ema_val_top5", "skipped_steps")


def write_metrics(history: list[dict], out: str) -> None:
    """Rewrite metrics.csv (through ``timm.utils.update_summary``) and metrics.jsonl from the whole history,
    each atomically: a resumed run's files then hold exactly the rows of its checkpoint."""
    from timm.utils import update_summary

    path = os.path.join(out, "metrics.csv")
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    for row in history:
        evals = {"loss": row["val_loss"], "top1": row["val_top1"], "top5": row["val_top5"]}
        if "ema_val_top1" in row:
            evals.update(ema_loss=row["ema_val_loss"], ema_top1=row["ema_val_top1"], ema_top5=row["ema_val_top5"])
        update_summary(row["epoch"], {"loss": row["train_loss"]}, evals, tmp, lr=row["lr"])
    os.replace(tmp, path)
    path = os.path.join(out, "metrics.jsonl")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for row in history:
            f.write(json.dumps({k: row[k] for k in METRIC_KEYS if k in row}) + "\n")
    os.replace(path + ".tmp", path)


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


def checkpoint_dict(p: Parts, state: TrainState, history: list[dict], rngs: list[dict], num_classes: int,
                    data_config: dict) -> dict:
    """timm's checkpoint keys, the official-style aliases, and the state an exact resume needs."""
    cfg = p.cfg
    weights = p.model.state_dict()
    ema = p.ema.module.state_dict() if p.ema is not None else None
    last_metric = history[-1]["val_top1" if cfg.best_metric == "top1" else "ema_val_top1"] if history else None
    ckpt = {
        # timm (CheckpointSaver layout; load_checkpoint / resume_checkpoint read these)
        "epoch": state.epoch - 1,
        "version": CHECKPOINT_VERSION,
        "arch": cfg.model,
        "state_dict": weights,
        "optimizer": p.optimizer.state_dict(),
        "metric": last_metric,
        # official-style loaders (DeiT / Vim / VMamba read "model") and vssm.detection ("ema"): the same
        # tensors as above, which torch.save stores once
        "model": weights,
        "ema": ema,
        # the run
        "format": CHECKPOINT_FORMAT,
        "model_name": cfg.model,
        "config": config_dict(cfg),
        "num_classes": num_classes,
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        "epochs_done": state.epoch,
        "step": state.step,
        "skipped_steps": state.skipped,
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "scheduler": p.scheduler.state_dict(),
        "world_size": p.dist.world_size,
        "rng": rngs,
        "history": history,
    }
    if ema is not None:
        ckpt["state_dict_ema"] = ema
    if p.scaler is not None:
        ckpt[p.scaler.state_dict_key] = p.scaler.state_dict()
    return ckpt


def restore(p: Parts, ckpt: dict, path: str) -> tuple[TrainState, list[dict]]:
    """Put a training checkpoint's states back into the run; clear errors when it does not fit."""
    cfg, d = p.cfg, p.dist
    if not is_training_checkpoint(ckpt):
        raise CheckpointError(
            f"{path!r} is not a training checkpoint of vssm.train (no format={CHECKPOINT_FORMAT!r}); to start "
            "from plain weights use `pretrained_file` instead of `resume`"
        )
    if ckpt.get("version", 1) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path!r} has checkpoint version {ckpt.get('version')}, this code reads <= {CHECKPOINT_VERSION}")
    if ckpt.get("model_name") != cfg.model:
        raise CheckpointError(f"{path!r} was written for model {ckpt.get('model_name')!r}, this run builds {cfg.model!r}")
    load_weights(p.model, weights_of(ckpt), f"checkpoint {path!r}")
    if p.ema is not None:
        ema = weights_of(ckpt, ema=True)
        if ema is None:
            raise CheckpointError(f"{path!r} has no EMA weights, but this run has model_ema on")
        load_weights(p.ema.module, ema, f"EMA weights of {path!r}")
    saved = upgrade_config(ckpt.get("config") or {})
    changed = [f"{k}: {saved[k]!r} -> {getattr(cfg, k)!r}" for k in SCHEDULE_KEYS
               if k in saved and saved[k] != getattr(cfg, k, saved[k])]
    if changed:
        raise CheckpointError(
            f"{path!r} was trained with another schedule ({'; '.join(changed)}); the restored scheduler would "
            "silently keep the old one. Resume with the run's own settings, or start a new run from its weights "
            "with `pretrained_file`"
        )
    try:
        p.optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimizer state of {path!r} does not fit this run's optimizer: {e}") from e
    p.scheduler.load_state_dict(ckpt["scheduler"])
    if p.scaler is not None:
        scaler_state = ckpt.get(p.scaler.state_dict_key) or ckpt.get("scaler")
        if scaler_state:
            p.scaler.load_state_dict(scaler_state)
    rngs = ckpt.get("rng") or []
    if len(rngs) == d.world_size:
        set_rng_state(rngs[d.rank])
    elif d.is_main:
        print(f"warning: {path} was written by {len(rngs)} rank(s), this run has {d.world_size}: RNG states are "
              "not restored, so the run continues on a different random stream", file=sys.stderr)
    state = TrainState(epoch=epochs_done(ckpt), step=ckpt["step"], skipped=ckpt.get("skipped_steps", 0),
                       best_metric=ckpt.get("best_metric"), best_epoch=ckpt.get("best_epoch"))
    return state, list(ckpt.get("history") or [])


def _all_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def train(cfg: argparse.Namespace, model: nn.Module | None = None) -> dict:
    """Run the training the config (from ``parse_config``) describes; returns the summary (also written to
    summary.json). ``model``: a model built by the caller, else ``timm.create_model`` from the config."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3, NativeScaler, random_seed

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

    # the same seed on every rank for the model, so the EMA copies start identical; per-rank after
    random_seed(cfg.seed)
    num_classes = dataset_classes(cfg)
    if model is None:
        model = model_from_config(cfg, num_classes)
    data_config = data_config_for(cfg, model)
    if cfg.grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ValueError(f"grad_checkpointing: model {cfg.model!r} has no set_grad_checkpointing()")
        model.set_grad_checkpointing(True)
    model.to(d.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = ModelEmaV3(model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup) if cfg.model_ema else None
    random_seed(cfg.seed, d.rank)

    train_ds, val_ds = build_datasets(cfg, data_config)
    pin = cfg.pin_mem and d.device.type == "cuda"
    train_loader, val_loader, sampler = build_loaders(cfg, train_ds, val_ds, d.rank, d.world_size, pin)
    batches_per_epoch = len(train_loader) if cfg.epoch_steps is None else min(cfg.epoch_steps, len(train_loader))
    updates_per_epoch = math.ceil(batches_per_epoch / cfg.accum_steps)

    global_batch = cfg.batch_size * cfg.accum_steps * d.world_size
    lr = resolve_lr(cfg, d.world_size)
    opt_kwargs = dict(eps=cfg.opt_eps)
    if cfg.opt_betas:
        opt_kwargs["betas"] = tuple(cfg.opt_betas)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                                    filter_bias_and_bn=True, **opt_kwargs)
    scheduler, total_epochs = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs, warmup_lr=cfg.warmup_lr,
        min_lr=cfg.min_lr, warmup_prefix=cfg.warmup_prefix, cooldown_epochs=cfg.cooldown_epochs, step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
    )
    scaler = NativeScaler(d.device.type) if cfg.amp == "fp16" else None

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

    parts = Parts(cfg=cfg, dist=d, model=model, train_model=train_model, ddp=ddp, optimizer=optimizer,
                  scheduler=scheduler, scaler=scaler, ema=ema, criterion=criterion, mixup=mixup, loader=train_loader,
                  steps=batches_per_epoch, total_epochs=total_epochs)

    state, history = TrainState(), []
    resume = cfg.resume
    if resume == "auto":
        candidate = os.path.join(out, "last.pth")
        resume = candidate if os.path.isfile(candidate) else None
    if resume:
        state, history = restore(parts, load_checkpoint(resume), resume)
        if d.is_main:
            print(f"resumed from {resume}: {state.epoch} epoch(s), {state.step} step(s) done", flush=True)

    # everything is built: from here on the run writes its folder
    paths = {k: os.path.join(out, v) for k, v in (("last", "last.pth"), ("best", "best.pth"), ("plot", "plot.png"),
                                                  ("metrics", "metrics.csv"), ("summary", "summary.json"),
                                                  ("config", "config.yaml"))}
    if d.is_main:
        os.makedirs(out, exist_ok=True)
        with open(paths["config"], "w", encoding="utf-8") as f:
            yaml.safe_dump(config_dict(cfg), f, sort_keys=False)

    n_params = sum(q.numel() for q in model.parameters())
    if d.is_main:
        print(f"model {cfg.model}: {n_params / 1e6:.2f}M params, {num_classes} classes, input {tuple(data_config['input_size'])}; "
              f"{len(train_ds)} train / {len(val_ds)} val images; {d.world_size} process(es) on {d.device.type}; "
              f"global batch {global_batch}, lr {lr:.3g}; {total_epochs} epochs x {updates_per_epoch} steps", flush=True)

    last_row: dict = history[-1] if history else {}
    for epoch in range(state.epoch, total_epochs):
        sampler.set_epoch(epoch)
        train_loader.generator.manual_seed(loader_seed(cfg.seed, d.rank, epoch))
        stats = train_one_epoch(parts, epoch, state)
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
            ckpt = checkpoint_dict(parts, state, history, rngs, num_classes, data_config)
            # best first: a kill between the two writes then leaves last.pth one epoch behind (resume redoes it),
            # never a last.pth whose best_epoch names weights that best.pth does not hold
            if improved:
                atomic_save(ckpt, paths["best"])
            atomic_save(ckpt, paths["last"])
            write_metrics(history, out)
            kw = ", ".join(f"{k}={v}" for k, v in (cfg.model_kwargs or {}).items())
            plot_metrics(history, paths["plot"], f"{cfg.model}" + (f" ({kw})" if kw else "") + f" on {cfg.dataset}")
            times = [r["epoch_time_s"] for r in history if "epoch_time_s" in r]
            eta = (total_epochs - epoch - 1) * (sum(times) / len(times))
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
        "lr": lr,
        "train_time_s": time.time() - t_start,
        "epoch_time_s": [r.get("epoch_time_s") for r in history],
        "train_img_per_s": [r.get("train_img_per_s") for r in history],
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
