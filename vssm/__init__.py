"""vssm: vision state-space backbones (Vim, VMamba, SiMBA, MambaVision) for timm.

Importing vssm registers its model families with timm, so ``timm.create_model("vim_tiny_patch16_224")``
works after ``import vssm``.
"""

__version__ = "0.1.0"


def _from_source_checkout() -> None:
    """Make `vssm.kernels` / `vssm.models` importable from a source checkout put on the path without an install
    (``PYTHONPATH=<checkout>``, as `.official/run.sh` does): an install maps the top-level ``kernels/`` and
    ``models/`` to those names (setup.py's package_dir); here they are loaded from beside this package under the
    same names. Nothing happens where an install (regular or editable) already provides them."""
    import importlib.util
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("kernels", "models"):
        full = f"{__name__}.{name}"
        if full in sys.modules or importlib.util.find_spec(full) is not None:
            continue
        init = os.path.join(root, name, "__init__.py")
        if not os.path.isfile(init):
            continue  # a broken install: the import below names what is missing
        spec = importlib.util.spec_from_file_location(full, init, submodule_search_locations=[os.path.dirname(init)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[full]
            raise
        setattr(sys.modules[__name__], name, module)


_from_source_checkout()

from vssm import models  # noqa: E402, F401  (registers the model families with timm)
from vssm.kernels import selective_scan  # noqa: E402

__all__ = ["__version__", "selective_scan", "models"]
