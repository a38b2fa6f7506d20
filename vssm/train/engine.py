"""One training epoch and one evaluation pass, on timm's utilities (NativeScaler, dispatch_clip_grad,
accuracy, AverageMeter, reduce_tensor), with the non-finite-loss policy every rank applies together."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = ["AMP_DTYPES", "Dist", "NonFiniteLossError", "TrainState", "evaluate", "init_distributed",
           "train_one_epoch"]

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    """Join the torchrun process group when launched by torchrun (NCCL on GPUs, gloo on the CPU), through
    ``timm.utils.init_distributed_device``."""
    from timm.utils import init_distributed_device

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda, but no CUDA device is available")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dist.is_initialized():  # a caller (or an earlier run in this process) already joined
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local) if device == "cuda" else torch.device("cpu")
        return Dist(dist.get_rank(), dist.get_world_size(), local, dev)
    args = argparse.Namespace(device=device)
    dev = init_distributed_device(args)
    return Dist(args.rank, args.world_size, args.local_rank, dev)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf (and the policy says stop, or too many steps were skipped)."""


def _autocast(device: torch.device, amp: str):
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, loader, d: Dist | None = None, amp: str = "none", channels_last: bool = False) -> dict:
    """Mean cross-entropy, top-1 and top-5 (in %) over the loader, summed over ranks."""
    from timm.utils import accuracy

    d = d or Dist()
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
        n = y.shape[0]
        top1, top5 = accuracy(out, y, topk=(1, 5))  # percentages of this batch: back to whole hits
        sums += torch.stack([nn.functional.cross_entropy(out, y, reduction="sum").double(),
                             (top1.double() * n / 100).round(), (top5.double() * n / 100).round(),
                             torch.tensor(float(n), dtype=torch.float64, device=d.device)])
    if d.enabled:  # ranks hold different numbers of images: sums, not means
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


@dataclass
class Parts:
    """What one epoch of training works with."""

    cfg: argparse.Namespace
    dist: Dist
    model: nn.Module  # the bare model (EMA updates, clipping)
    train_model: nn.Module  # what the forward runs: the model, its DDP wrapper, compiled
    ddp: nn.parallel.DistributedDataParallel | None
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object | None  # timm.utils.NativeScaler under fp16
    ema: object | None
    criterion: nn.Module
    mixup: object | None
    loader: object
    steps: int  # batches per epoch
    total_epochs: int


def train_one_epoch(p: Parts, epoch: int, state: TrainState) -> dict:
    """One pass over the training loader; returns mean loss, img/s and time."""
    from timm.utils import AverageMeter, dispatch_clip_grad, reduce_tensor
    from tqdm import tqdm

    cfg, d, optimizer = p.cfg, p.dist, p.optimizer
    params = [q for q in p.model.parameters() if q.requires_grad]
    accum, steps = cfg.accum_steps, p.steps

    p.train_model.train()
    optimizer.zero_grad(set_to_none=True)
    losses = AverageMeter()
    seen = 0
    window_start = 0
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{p.total_epochs}", disable=not (d.is_main and cfg.progress),
               dynamic_ncols=True, leave=False)
    for i, (x, y) in enumerate(p.loader):
        if i >= steps:
            break
        # the last window of an epoch may be short; the loss is averaged over the batches it has
        window = min(accum, steps - window_start)
        last_in_window = i - window_start + 1 == window
        x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
        if p.mixup is not None:
            x, y = p.mixup(x, y)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(d.device, cfg.amp):
            out = p.train_model(x)
            loss = p.criterion(out, y)
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
        sync = p.ddp.no_sync() if (p.ddp is not None and not last_in_window) else contextlib.nullcontext()
        with sync:
            scaled = loss / window
            if p.scaler is not None:
                p.scaler(scaled, optimizer, clip_grad=cfg.clip_grad, clip_mode=cfg.clip_mode, parameters=params,
                         need_update=last_in_window)
            else:
                scaled.backward()
                if last_in_window:
                    if cfg.clip_grad:
                        dispatch_clip_grad(params, cfg.clip_grad, mode=cfg.clip_mode)
                    optimizer.step()
        losses.update(float(loss.detach()), 1)
        seen += x.shape[0]
        if last_in_window:
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            p.scheduler.step_update(num_updates=state.step)
            if p.ema is not None:
                p.ema.update(p.model, step=state.step)
            window_start = i + 1
        show_bar = not bar.disable and (losses.count % 10 == 1 or i + 1 == steps)
        show_line = bar.disable and d.is_main and not cfg.progress and (i + 1) % cfg.log_interval == 0
        if show_bar or show_line:
            ips = seen * d.world_size / max(time.perf_counter() - t0, 1e-9)
            lr = optimizer.param_groups[0]["lr"]
            if show_bar:
                bar.set_postfix(loss=f"{losses.avg:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.0f}", refresh=False)
            else:
                print(f"epoch {epoch + 1} [{i + 1}/{steps}] loss {losses.avg:.4f} lr {lr:.3e} {ips:.0f} img/s", flush=True)
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - t0
    mean_loss = losses.avg if losses.count else float("nan")
    if d.enabled:  # every rank ran the same number of batches (drop_last, equal shares): the mean of means
        mean_loss = float(reduce_tensor(torch.tensor(mean_loss, dtype=torch.float64, device=d.device), d.world_size))
    return {"train_loss": mean_loss, "train_img_per_s": seen * d.world_size / max(elapsed, 1e-9),
            "epoch_time_s": elapsed}
