"""Where a training step's backward spends its host time, by autograd node type: argv model (project timm name or
*_official). torch.profiler (CPU only) over 5 steps after 8 warm ones, the harness's step (bf16 autocast, batch 128
at 224, AdamW): per node type the CPU time of its evaluation (children included) and count per step, then the
backward's ops by self CPU. Written for the next session: MambaVision-T's backward took 34 ms to enqueue against
the official's 18 (call 8), with autograd graphs of the same size (`mv_nodes.py`)."""
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

name = sys.argv[1]
if not name.endswith("_official"):
    _env.use_project()
m = _env.build(name).cuda()
step = _env.make_step(m, "train", 128, 224, annotate=True)
for _ in range(8):
    step()
torch.cuda.synchronize()
STEPS = 5
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(STEPS):
        step()
    torch.cuda.synchronize()
nodes, counts = collections.Counter(), collections.Counter()
prefix = "autograd::engine::evaluate_function: "
for e in prof.events():
    if e.name.startswith(prefix):
        key = e.name[len(prefix):]
        nodes[key] += e.cpu_time_total
        counts[key] += 1
total = sum(nodes.values())
print(f"{name}: backward nodes' CPU time {total / STEPS / 1e3:.2f} ms per step, {sum(counts.values()) / STEPS:.0f} nodes")
for k, v in nodes.most_common(30):
    print(f"  {v / STEPS / 1e3:7.3f} ms {counts[k] / STEPS:5.0f}x  {k}")
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
