"""tools/bench_scan.py's forward comparisons on the CPU under the Triton interpreter (tiny shapes, a stand-in
timer): every variant runs, equals the first variant's output, and the states-middle variants take those tiles."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = """
import json, sys, torch
sys.path[:0] = sys.argv[1:3]
import bench_scan
from launch_spy import LaunchSpy
from vssm.kernels.selective_scan import triton_fwd
spy = triton_fwd._fwd_kernel = LaunchSpy(triton_fwd._fwd_kernel)
timed = []
def timer(fn):
    timed.append(fn()[0].shape)
    return 1.0
shapes = {"vim": ((2, 8, 37, 16, 1), ["natural", "reverse"], False), "n8": ((1, 16, 21, 8, 1), None, True)}
rows = bench_scan.bench_fwd_smid(torch.float32, shapes=shapes, device="cpu", timer=timer)
walk = bench_scan.bench_fwd_walk(torch.float32, shapes={"vim": shapes["vim"]}, device="cpu", timer=timer)
smid = [k["SMID"] for _, _, k in spy.launches]
print(json.dumps(dict(rows=rows, walk=walk, smid=smid, timed=len(timed))))
"""


def test_bench_scan_forward_variants_interpreted():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("VSSM_SCAN_FWD", None)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, os.path.join(ROOT, "tools"), os.path.join(ROOT, "tests", "gpu")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = out["rows"]
    assert [r["variant"] for r in rows[:5]] == ["states-last", "default", "smid", "smid no doubling", "smid T x2"]
    assert len(rows) == 10 and all(r["fwd_ms"] == 1.0 for r in rows)
    assert all(r["max_rel_diff"] <= 1e-5 for r in rows), rows
    # two runs per variant (its output, then the timer's); tiny shapes are below the default's program threshold
    assert out["smid"][:10] == [False, False, False, False, True, True, True, True, True, True], out["smid"]
    assert len(out["walk"]) == 9 and all(r["max_rel_diff"] <= 1e-5 for r in out["walk"]), out["walk"]
    assert out["timed"] == 10 + 9
