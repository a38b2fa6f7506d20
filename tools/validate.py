#!/usr/bin/env python3
"""Top-1 / top-5 / loss of a model on an ImageFolder val set, digits, or synthetic data.

    python tools/validate.py --checkpoint runs/quickstart/best.pth --dataset digits
    python tools/validate.py --model vim_tiny_patch16_224 --checkpoint vim_t_midclstok_76p1acc.pth \
        --data-dir /data/imagenet --amp bf16 --json-out vim_t.json

``--checkpoint`` takes a training checkpoint of vssm.train (model name, kwargs, classes and input size come
from it; ``--ema`` scores its EMA weights) or an official-format weights file (``{"model": state_dict}`` or a
bare state_dict), mapped by the model module's ``checkpoint_filter_fn`` and loaded strictly (every key must
fit). Preprocessing follows the model's pretrained_cfg (input size, crop_pct, interpolation, mean/std) unless
overridden. The work is done by ``vssm.train.validate``; this is its command line.
"""

from vssm.train.cli import run_main
from vssm.train.validation import main

if __name__ == "__main__":
    run_main(lambda: main(description=__doc__.split("\n\n")[0]))  # ValueError includes CheckpointError
