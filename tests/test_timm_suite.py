"""timm's own model test-suite (``tests/test_models.py`` of the installed timm) on one small model per family.

The file comes from the timm source distribution of the installed version: ``$VSSM_TIMM_TEST_MODELS`` (a path
to it), else a cached ``pip download`` of the sdist (``~/.cache/vssm``). `tests/timm_suite_plugin.py` registers
the families, treats Vim and SiMBA (class-token sequences out of ``forward_features``) as timm treats ViT /
CaiT, builds the models small and leaves out the TorchScript tests, which `test_torchscript_is_refused` covers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import timm
import torch

import vssm  # noqa: F401  (registers the families)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))
from timm_suite_plugin import SUITE_KWARGS  # noqa: E402


def _timm_test_models() -> Path:
    """timm's tests/test_models.py for the installed version (downloaded once into the cache)."""
    given = os.environ.get("VSSM_TIMM_TEST_MODELS")
    if given:
        return Path(given)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vssm" / f"timm-{timm.__version__}"
    target = cache / "test_models.py"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
           f"timm=={timm.__version__}", "-d", str(cache)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    sdists = sorted(cache.glob("timm-*.tar.gz"))
    if done.returncode or not sdists:
        pytest.skip(
            f"timm {timm.__version__} sdist not available ({done.stderr.strip()[-200:]}); set VSSM_TIMM_TEST_MODELS "
            "to its tests/test_models.py"
        )
    with tarfile.open(sdists[-1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/tests/test_models.py"))
        target.write_bytes(tar.extractfile(member).read())
    return target


def test_timm_model_suite(tmp_path):
    source = _timm_test_models()
    (tmp_path / "test_models.py").write_bytes(source.read_bytes())  # outside any package, next to nothing else
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "timm_suite_plugin", "-p", "no:cacheprovider",
           "-c", os.devnull, "--rootdir", str(tmp_path), "-W", "ignore", str(tmp_path / "test_models.py")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    passed = re.findall(r"^PASSED \S+::(\w+)\[[^\]]*?([a-z0-9_]+)(?:\.\w+)?\]", out, flags=re.M)
    by_model = {name: {t for t, n in passed if n == name} for name in SUITE_KWARGS}
    for name, tests in by_model.items():
        # every model went through timm's forward, backward, cfg and FX checks
        assert {"test_model_forward", "test_model_backward", "test_model_forward_fx", "test_model_backward_fx"} <= tests, (
            name, sorted(tests))
        assert tests & {"test_model_default_cfgs", "test_model_default_cfgs_non_std"}, (name, sorted(tests))


@pytest.mark.parametrize("name", sorted(SUITE_KWARGS))
def test_torchscript_is_refused(name):
    model = timm.create_model(name, **SUITE_KWARGS[name])
    with pytest.raises(RuntimeError, match=r"torch\.compile.*torch\.export"):
        torch.jit.script(model)
