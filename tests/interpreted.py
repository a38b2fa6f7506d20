"""The Triton kernels' tests on the CPU: a test module run as a script in a child process under
TRITON_INTERPRET=1 (read when `@triton.jit` decorates, and other test modules import vssm first), its
results the JSON object on the last line of its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest


def _env() -> dict:
    return dict(os.environ, TRITON_INTERPRET="1")


def _result(returncode: int, stdout: str, stderr: str, tail: int):
    """A finished child's JSON value on the last line of its output (its stderr's tail if it failed)."""
    assert returncode == 0, stderr[-tail:]
    return json.loads(stdout.strip().splitlines()[-1])


def _run(argv: list, timeout: int, tail: int):
    pytest.importorskip("triton")
    proc = subprocess.run([sys.executable, *argv], env=_env(), capture_output=True, text=True, timeout=timeout)
    return _result(proc.returncode, proc.stdout, proc.stderr, tail)


# children started at the end of collection (`start_early`, from conftest.py), by script path
_EARLY: dict[str, tuple] = {}  # path -> (the child, its stdout file, its stderr file)


def start_early(path: str) -> None:
    """Start `run_as_script(path)`'s child now, in the background: the longest interpreter runs (ten minutes on a
    2-core machine) then overlap the rest of the suite instead of adding to it. `run_as_script` collects it."""
    path = os.path.abspath(path)
    if path in _EARLY:
        return
    try:
        import triton  # noqa: F401
    except ImportError:
        return  # run_as_script skips
    # output to files, not pipes: a child that filled a pipe nobody reads yet would wait for the test
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    _EARLY[path] = (subprocess.Popen([sys.executable, path], env=_env(), stdout=out, stderr=err, text=True), out, err)


def stop_early() -> None:
    """End the children no test collected (a run stopped early, `-x`)."""
    while _EARLY:
        _, (proc, out, err) = _EARLY.popitem()
        proc.kill()
        proc.wait()
        out.close()
        err.close()


def run_as_script(path: str, timeout: int) -> dict:
    early = _EARLY.pop(os.path.abspath(path), None)
    if early is None:
        return _run([os.path.abspath(path)], timeout, 4000)
    proc, out, err = early
    with out, err:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return _result(proc.returncode, out.read(), err.read(), 4000)


def run_code(code: str, timeout: int):
    """`code` run by a child Python under TRITON_INTERPRET=1: the JSON value on the last line of its output."""
    return _run(["-c", code], timeout, 3000)
