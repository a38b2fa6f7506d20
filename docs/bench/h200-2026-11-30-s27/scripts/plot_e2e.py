"""Stop 27's end-to-end ratios (project / official img/s, call 7's run.sh e2e: raw/call7/run.log) as bars against each
row's target, with stop 26's ratios (../h200-2026-11-30-s26/raw/call5/run.log) as markers. SiMBA-S has no official
code: its bar is img/s over the issue's 221. Run from this directory: python scripts/plot_e2e.py -> e2e.png."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LINE = re.compile(r"\[(\w+)\]\s+(\S+)\s+(infer|train)\s+(\d+)px bs\s+(\d+):\s+([\d.]+) img/s")
ROWS = [  # label, project model, official model (without _official), mode, px, batch, target
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


def img_per_s(path):
    """{(official?, model, mode, px, batch): img/s} from a run.sh log."""
    found = {}
    for line in open(path):
        m = LINE.match(line)
        if m:
            side, name, mode, px, bs, ips = m.groups()
            found[(side.startswith("official"), name.replace("_official", ""), mode, int(px), int(bs))] = float(ips)
    return found


def row_ratios(found):
    out = []
    for _, proj, off, mode, px, bs, _ in ROWS:
        p, o = found.get((False, proj, mode, px, bs)), found.get((True, off, mode, px, bs))
        out.append(p / o if p and o else float("nan"))
    out.append(found[(False, "simba_s", "train", 224, 128)] / 221)
    return out


now = row_ratios(img_per_s("raw/call7/run.log"))
before = row_ratios(img_per_s("../h200-2026-11-30-s26/raw/call5/run.log"))
labels = [r[0] for r in ROWS] + ["SiMBA-S train (vs 221)"]
targets = [r[6] for r in ROWS] + [1.3]

fig, ax = plt.subplots(figsize=(12, 5.5))
x = list(range(len(labels)))
ax.bar(x, now, color=["tab:green" if r >= t else "tab:red" for r, t in zip(now, targets)], label="stop 27 (8c5bf08), call 7")
ax.scatter(x, before, color="black", marker="D", zorder=3, label="stop 26 (f4ec7c3), call 5")
ax.hlines(targets, [i - 0.4 for i in x], [i + 0.4 for i in x], colors="tab:blue", linestyles="--", label="target")
ax.axhline(1.0, color="grey", linewidth=0.8)
for i, r in enumerate(now):
    ax.text(i, r + 0.03, f"{r:.2f}", ha="center", fontsize=8)
ax.set_xticks(x)
ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
ax.set_ylabel("project / official img/s")
ax.set_title("H200, bf16: end to end against the official CUDA code (one run.sh call per stop; hosts differ)")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
fig.savefig("e2e.png", dpi=110)
for lab, c, b, t in zip(labels, now, before, targets):
    print(f"{lab:24s} {c:5.2f}  (stop 26 {b:5.2f}, target {t})")
