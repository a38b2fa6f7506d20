#!/usr/bin/env python3
"""Train an image classifier: any timm model name, vssm's families included.

    python tools/train.py --config configs/quickstart.yaml --output runs/quickstart
    torchrun --nproc_per_node 8 tools/train.py --config configs/vim/vim_tiny_patch16_224.yaml \
        --data-dir /data/imagenet --output runs/vim_tiny

Every key of the YAML config is also a flag (``lr_base_size`` -> ``--lr-base-size``); the command line wins,
and the resolved config is written to ``<output>/config.yaml``. ``--resume <run>/last.pth`` (or ``--resume
auto``) continues a run where its last checkpoint left it, ending on the weights an uninterrupted run reaches.
The work is done by ``vssm.train`` (``parse_config``, ``train``); this is its command line.
"""

from vssm.train.cli import run_main, train_main
from vssm.train.engine import NonFiniteLossError

if __name__ == "__main__":
    # user-facing errors (ValueError, CheckpointError, NonFiniteLossError): one clear line
    run_main(lambda: train_main(description=__doc__.split("\n\n")[0]), (ValueError, NonFiniteLossError))
