"""Stop 24's end-to-end ratios (project / official img/s) as a bar chart with each row's target: call 3's run.sh e2e
(raw/call3/run.log) and, for MambaVision, call 4's fresh-process rounds (raw/call4/mv_sides.txt, the mean of the
two ratios). Run from this directory's parent: python scripts/plot_e2e.py -> e2e.png."""
import ast
import re
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = {}
for line in open("raw/call3/run.log"):
    m = re.match(r"\[(\w+)\]\s+(\S+)\s+(infer|train)\s+(\d+)px bs\s+(\d+):\s+([\d.]+) img/s", line)
    if m:
        side, name, mode, px, bs, ips = m.groups()
        rows[(side, name.replace("_official", ""), mode, int(px), int(bs))] = float(ips)
sides = {}
for line in open("raw/call4/mv_sides.txt"):
    name, mode, rest = line.split(" ", 2)
    sides.setdefault((name.replace("_official", ""), mode, name.endswith("_official")), []).append(
        ast.literal_eval(rest.strip())["img_per_s"])

PAIRS = [  # label, project name, official name, mode, px, bs, target
    ("Vim-Ti infer", "vim_tiny_patch16_224", "vim_tiny", "infer", 224, 128, 1.0),
    ("Vim-Ti train", "vim_tiny_patch16_224", "vim_tiny", "train", 224, 128, 1.0),
    ("Vim-S infer", "vim_small_patch16_224", "vim_small", "infer", 224, 128, 1.5),
    ("Vim-S train", "vim_small_patch16_224", "vim_small", "train", 224, 128, 1.5),
    ("VMamba-T infer", "vmamba_tiny_s1l8", "vmamba_tiny_s1l8", "infer", 224, 128, 1.3),
    ("VMamba-T train", "vmamba_tiny_s1l8", "vmamba_tiny_s1l8", "train", 224, 128, 1.3),
    ("VMamba-S infer", "vmamba_small_s2l15", "vmamba_small_s2l15", "infer", 224, 128, 1.3),
    ("VMamba-S train", "vmamba_small_s2l15", "vmamba_small_s2l15", "train", 224, 128, 1.3),
    ("Vim-Ti 512/32", "vim_tiny_patch16_224", "vim_tiny", "infer", 512, 32, 1.0),
    ("Vim-Ti 1024/8", "vim_tiny_patch16_224", "vim_tiny", "infer", 1024, 8, 1.0),
    ("Vim-Ti 1248/8", "vim_tiny_patch16_224", "vim_tiny", "infer", 1248, 8, 2.0),
]
labels, ratios, targets = [], [], []
for label, proj, off, mode, px, bs, target in PAIRS:
    sides_of = {s: rows.get((s, n, mode, px, bs)) for s, n in (("project", proj), ("official_vim", off),
                                                              ("official_vmamba", off))}
    official = sides_of["official_vim"] or sides_of["official_vmamba"]
    labels.append(label)
    ratios.append(sides_of["project"] / official)
    targets.append(target)
for model, label in (("mambavision_t", "MambaVision-T"), ("mambavision_b", "MambaVision-B")):
    for mode in ("infer", "train"):
        pr, of = sides[(model, mode, False)], sides[(model, mode, True)]
        labels.append(f"{label} {mode} (call 4)")
        ratios.append(statistics.mean(p / o for p, o in zip(pr, of)))
        targets.append(1.0)
SIMBA = rows[("project", "simba_s", "train", 224, 128)] / 221  # the figure; no official CUDA code
labels.append("SiMBA-S train (vs 221)")
ratios.append(SIMBA)
targets.append(1.3)

fig, ax = plt.subplots(figsize=(11, 5.5))
colors = ["tab:green" if r >= t else "tab:red" for r, t in zip(ratios, targets)]
x = range(len(labels))
ax.bar(x, ratios, color=colors)
ax.scatter(x, targets, marker="_", s=600, color="black", zorder=3, label="target (issue 12 / 16; 1.0 where none is named)")
for i, r in enumerate(ratios):
    ax.text(i, r + 0.03, f"{r:.2f}", ha="center", fontsize=8)
ax.axhline(1.0, color="grey", lw=0.8, ls="--")
ax.set_xticks(list(x))
ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
ax.set_ylabel("project / official img/s")
ax.set_title("vssm against the official CUDA code, one H200, bf16 (stop 24, 0ded604)")
ax.legend()
fig.tight_layout()
fig.savefig("e2e.png", dpi=110)
for label, r, t in zip(labels, ratios, targets):
    print(f"{label:28s} {r:5.2f}  target {t}")
