"""The Triton kernels' tests on the CPU: a test module run as a script in a child process under
TRITON_INTERPRET=1 (read when `@triton.jit` decorates, and other test modules import vssm first), its
results the JSON object on the last line of its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _run(argv: list, timeout: int, tail: int):
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-tail:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_as_script(path: str, timeout: int) -> dict:
    return _run([os.path.abspath(path)], timeout, 4000)


def run_code(code: str, timeout: int):
    """`code` run by a child Python under TRITON_INTERPRET=1: the JSON value on the last line of its output."""
    return _run(["-c", code], timeout, 3000)
