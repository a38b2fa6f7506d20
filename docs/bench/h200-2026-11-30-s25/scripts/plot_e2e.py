"""Stop 25's end-to-end ratios (project / official img/s, call 4's run.sh e2e: raw/call4/run.log) as bars against each
row's target, with stop 24's ratios of the same rows (../h200-2026-11-30-s24/raw/call3/run.log; its MambaVision rows from
its call 4's fresh-process rounds) as markers. Run from this directory's parent: python scripts/plot_e2e.py -> e2e.png."""
import ast
import re
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LINE = re.compile(r"\[(\w+)\]\s+(\S+)\s+(infer|train)\s+(\d+)px bs\s+(\d+):\s+([\d.]+) img/s")


def read(path):
    rows = {}
    for line in open(path):
        m = LINE.match(line)
        if m:
            side, name, mode, px, bs, ips = m.groups()
            official = side.startswith("official")
            rows[(official, name.replace("_official", ""), mode, int(px), int(bs))] = float(ips)
    return rows


ROWS = [  # label, project name, official name, mode, px, bs, target
    ("Vim-Ti infer", "vim_tiny_patch16_224", "vim_tiny", "infer", 224, 128, 1.0),
    ("Vim-Ti train", "vim_tiny_patch16_224", "vim_tiny", "train", 224, 128, 1.0),
    ("Vim-S infer", "vim_small_patch16_224", "vim_small", "infer", 224, 128, 1.5),
    ("Vim-S train", "vim_small_patch16_224", "vim_small", "train", 224, 128, 1.5),
    ("VMamba-T infer", "vmamba_tiny_s1l8", "vmamba_tiny_s1l8", "infer", 224, 128, 1.3),
    ("VMamba-T train", "vmamba_tiny_s1l8", "vmamba_tiny_s1l8", "train", 224, 128, 1.3),
    ("VMamba-S infer", "vmamba_small_s2l15", "vmamba_small_s2l15", "infer", 224, 128, 1.3),
    ("VMamba-S train", "vmamba_small_s2l15", "vmamba_small_s2l15", "train", 224, 128, 1.3),
    ("MambaVision-T infer", "mambavision_t", "mambavision_t", "infer", 224, 128, 1.0),
    ("MambaVision-T train", "mambavision_t", "mambavision_t", "train", 224, 128, 1.0),
    ("MambaVision-B infer", "mambavision_b", "mambavision_b", "infer", 224, 128, 1.0),
    ("MambaVision-B train", "mambavision_b", "mambavision_b", "train", 224, 128, 1.0),
    ("Vim-Ti 512/32", "vim_tiny_patch16_224", "vim_tiny", "infer", 512, 32, 1.0),
    ("Vim-Ti 1024/8", "vim_tiny_patch16_224", "vim_tiny", "infer", 1024, 8, 1.0),
    ("Vim-Ti 1248/8", "vim_tiny_patch16_224", "vim_tiny", "infer", 1248, 8, 2.0),
]


def ratios(rows):
    out = []
    for _, proj, off, mode, px, bs, _ in ROWS:
        p, o = rows.get((False, proj, mode, px, bs)), rows.get((True, off, mode, px, bs))
        out.append(p / o if p and o else None)
    return out


now = read("raw/call4/run.log")
before_rows = read("../h200-2026-11-30-s24/raw/call3/run.log")
mv = {}  # stop 24's MambaVision rows: its call 4, fresh processes, the mean of two rounds
for line in open("../h200-2026-11-30-s24/raw/call4/mv_sides.txt"):
    name, mode, rest = line.split(" ", 2)
    mv.setdefault((name.endswith("_official"), name.replace("_official", ""), mode), []).append(
        ast.literal_eval(rest.strip())["img_per_s"])
before = ratios(before_rows)
for i, (_, proj, _, mode, _, _, _) in enumerate(ROWS):
    if proj.startswith("mambavision"):
        before[i] = statistics.mean(p / o for p, o in zip(mv[(False, proj, mode)], mv[(True, proj, mode)]))
labels = [r[0] for r in ROWS] + ["SiMBA-S train (vs 221)"]
targets = [r[6] for r in ROWS] + [1.3]
current = ratios(now) + [now[(False, "simba_s", "train", 224, 128)] / 221]  # the figure; no official code
before.append(before_rows[(False, "simba_s", "train", 224, 128)] / 221)

fig, ax = plt.subplots(figsize=(12, 5.5))
x = range(len(labels))
ax.bar(x, current, color=["tab:green" if r >= t else "tab:red" for r, t in zip(current, targets)],
       label="stop 25 (88e6bcc), call 4")
ax.scatter(x, before, color="black", marker="D", zorder=3, label="stop 24 (0ded604), call 3 / call 4")
ax.hlines(targets, [i - 0.4 for i in x], [i + 0.4 for i in x], colors="tab:blue", linestyles="--", label="target")
ax.axhline(1.0, color="grey", linewidth=0.8)
for i, r in enumerate(current):
    ax.text(i, r + 0.03, f"{r:.2f}", ha="center", fontsize=8)
ax.set_xticks(list(x))
ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
ax.set_ylabel("project / official img/s")
ax.set_title("H200, bf16: end to end against the official CUDA code (one run.sh call per stop; hosts differ)")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
fig.savefig("e2e.png", dpi=110)
print("\n".join(f"{lab:28s} {c:5.2f}  (before {b:5.2f}, target {t})" for lab, c, b, t in zip(labels, current, before,
                                                                                               targets)))
