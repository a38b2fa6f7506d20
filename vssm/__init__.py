"""vssm: vision state-space backbones (Vim, VMamba, SiMBA, MambaVision) for timm.

Importing vssm registers its model families with timm, so ``timm.create_model("vim_tiny_patch16_224")``
works after ``import vssm``.
"""

__version__ = "0.1.0"

from vssm import models  # noqa: F401  (registers the model families with timm)
from vssm.kernels import selective_scan

__all__ = ["__version__", "selective_scan", "models"]
