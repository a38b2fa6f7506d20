"""Training, evaluation and checkpoints for timm models (vssm's families included), on timm's utilities.

    from vssm.train import parse_config, train
    summary = train(parse_config(["--config", "configs/quickstart.yaml", "--output", "runs/quickstart"]))

``tools/train.py``, ``validate.py``, ``benchmark.py`` and ``flops.py`` are the command lines of this package.
"""

from vssm.train.build import build_datasets, build_loaders, create_model, model_from_config
from vssm.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    atomic_save,
    is_training_checkpoint,
    load_checkpoint,
    load_weights,
    weights_of,
)
from vssm.train.config import CONFIG_SPEC, build_parser, parse_config, resolve_lr
from vssm.train.engine import Dist, NonFiniteLossError, TrainState, evaluate, train_one_epoch
from vssm.train.run import train
from vssm.train.validation import validate

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CONFIG_SPEC",
    "CheckpointError",
    "Dist",
    "NonFiniteLossError",
    "TrainState",
    "atomic_save",
    "build_datasets",
    "build_loaders",
    "build_parser",
    "create_model",
    "evaluate",
    "is_training_checkpoint",
    "load_checkpoint",
    "load_weights",
    "model_from_config",
    "parse_config",
    "resolve_lr",
    "train",
    "train_one_epoch",
    "validate",
    "weights_of",
]
