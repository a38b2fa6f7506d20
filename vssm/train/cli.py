"""What the command lines in tools/ share: ``run_main`` and the training entry point."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["run_main", "train_main"]


def run_main(main: Callable[[], int], errors: tuple[type[BaseException], ...] = (ValueError,)) -> None:
    """Run a tool's main(); user-facing errors print as one line (no traceback) and exit with 2."""
    try:
        sys.exit(main())
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def train_main(argv: list[str] | None = None, description: str | None = None) -> int:
    """``tools/train.py``: parse the config (defaults <- YAML <- flags), train, leave the process group."""
    import torch.distributed as dist

    from vssm.train.config import parse_config
    from vssm.train.run import train

    cfg = parse_config(argv, description)
    try:
        train(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
