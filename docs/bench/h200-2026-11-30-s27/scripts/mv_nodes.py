"""Autograd nodes of one MambaVision-T training forward, the official model against the project's, on the CPU (no GPU,
no mamba_ssm). mamba_ssm is replaced by a one-node stand-in (`mvstub_selective_scan_interface.py`, copied to
<stub>/mamba_ssm/ops/selective_scan_interface.py with empty __init__.py files), so both graphs count the scan as one node.
PYTHONPATH=<stub>:<official>/MambaVision:<checkout> python mv_nodes.py"""
import collections

import timm
import torch
from mambavision.models import mamba_vision as mv

import vssm.models  # noqa: F401


def count(m, x):
    y = m(x).sum()
    seen, stack, cnt = set(), [y.grad_fn], collections.Counter()
    while stack:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        cnt[type(f).__name__] += 1
        stack.extend(n for n, _ in f.next_functions)
    return cnt


x = torch.randn(2, 3, 224, 224)
co = count(mv.mamba_vision_T(pretrained=False).train(), x)
cp = count(timm.create_model("mambavision_t").train(), x)
print("nodes official", sum(co.values()), "project", sum(cp.values()))
for k in sorted(set(co) | set(cp), key=lambda k: -(co[k] + cp[k])):
    if co[k] != cp[k]:
        print(f"{k:40s} official {co[k]:4d} project {cp[k]:4d}")
