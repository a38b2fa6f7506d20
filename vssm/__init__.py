"""vssm: vision state-space backbones (Vim, VMamba, SiMBA, MambaVision) for timm.

Importing vssm registers its model families with timm, so ``timm.create_model("vim_tiny_patch16_224")``
works after ``import vssm``.
"""

import os as _os

__version__ = "0.1.0"

# In a source checkout, kernels/ and models/ sit beside vssm/ and install as vssm.kernels and
# vssm.models. Path-based editable installs (older setuptools) and a bare PYTHONPATH=<checkout> don't
# know that mapping, so let the package's search path include the checkout root in that case.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "setup.py")) and _os.path.isfile(
    _os.path.join(_root, "kernels", "__init__.py")
):
    __path__.append(_root)  # noqa: F821  (__path__ is defined for packages)

from vssm import models  # noqa: E402,F401  (registers the model families with timm)
from vssm.kernels import selective_scan  # noqa: E402

__all__ = ["__version__", "selective_scan", "models"]
