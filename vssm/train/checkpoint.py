"""Training checkpoints: timm's layout with our run state beside it, written atomically.

A file holds what ``timm.models.load_checkpoint`` / ``resume_checkpoint`` and timm's ``CheckpointSaver`` use
(``state_dict``, ``state_dict_ema``, ``optimizer``, ``amp_scaler``, ``epoch`` as the index of the last finished
epoch with ``version`` 2, ``arch``, ``metric``), the keys official-style loaders read (``model``, and ``ema``
for ``vssm.detection``: the same tensors, stored once) and what an exact resume needs on top: scheduler,
step counts, best metric, the resolved config, the metrics history and every rank's RNG states.
Files of the earlier layout (``version`` 1: ``epoch`` = epochs done, ``scaler``) still read.
"""

from __future__ import annotations

import argparse
import os
import random
from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "atomic_save", "epochs_done",
           "is_training_checkpoint", "load_checkpoint", "load_weights", "official_state_dict", "rng_state",
           "set_rng_state", "weights_of"]

CHECKPOINT_FORMAT = "vssm.train"
# 2: timm's keys (epoch = last finished epoch index, as timm's saver writes with version 2); 1: the earlier layout
CHECKPOINT_VERSION = 2


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
        # official Vim/DeiT-style (and timm-trained) files also pickle their argparse.Namespace: allow that class
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


def epochs_done(ckpt: dict) -> int:
    """Finished epochs of a training checkpoint, in either layout."""
    if ckpt.get("version", 1) >= 2:
        return int(ckpt["epoch"]) + 1
    return int(ckpt["epoch"])


def weights_of(ckpt: dict, ema: bool = False) -> dict | None:
    """The model (or EMA) state_dict of a training checkpoint, in either layout; None when absent."""
    keys = ("state_dict_ema", "ema") if ema else ("state_dict", "model")
    for key in keys:
        if ckpt.get(key) is not None:
            return ckpt[key]
    return None


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


def official_state_dict(ckpt: dict, model: nn.Module) -> dict:
    """A released checkpoint mapped onto ``model``: the model module's ``checkpoint_filter_fn`` when it has
    one (it unwraps ``model``, renames keys, resamples position embeddings), else timm's unwrapping."""
    import sys

    from timm.models import clean_state_dict

    module = sys.modules.get(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is not None:
        return filter_fn(ckpt, model)
    sd = ckpt
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    return clean_state_dict(sd)


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
