"""`import vssm` from a source checkout on the path without an install (``PYTHONPATH=<checkout>``, how
`.official/run.sh` imports the project): vssm.kernels and vssm.models are the top-level kernels/ and models/."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the child drops any editable-install finder (this checkout may be pip install -e'd) and puts the checkout first
_CHILD = r"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, {root!r})
import timm
import vssm
from vssm.kernels.selective_scan import op
print(vssm.__file__)
print(vssm.kernels.__file__)
print(vssm.models.__file__)
print(op.__file__)
print(type(timm.create_model("vim_tiny_patch16_224", pretrained=False)).__module__)
"""


def test_import_from_a_source_checkout_maps_kernels_and_models():
    r = subprocess.run([sys.executable, "-c", _CHILD.format(root=ROOT)], capture_output=True, text=True,
                       cwd=os.path.dirname(ROOT), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    vssm_file, kernels_file, models_file, op_file, model_module = r.stdout.split()[-5:]
    assert vssm_file == os.path.join(ROOT, "vssm", "__init__.py")
    assert kernels_file == os.path.join(ROOT, "kernels", "__init__.py")
    assert models_file == os.path.join(ROOT, "models", "__init__.py")
    assert op_file == os.path.join(ROOT, "kernels", "selective_scan", "op.py")
    assert model_module == "vssm.models.vim"

