"""Chart of end-to-end ratios against the official code, from the ``e2e.json`` files that ``.official/run.sh e2e``
writes (one per run): the first run as bars (green where the row meets its target, red where not), each further run
as markers, the targets as dashed lines.

    python tools/plot_e2e.py "stop 28=docs/bench/h200-2026-12-01-s28/raw/call5/e2e.json" \\
        "stop 27=docs/bench/h200-2026-11-30-s27/raw/call7/e2e.json" --out docs/bench/h200-2026-12-01-s28/e2e.png

A row's ratio is the project's img/s over the official side's for the same (model, mode, size, batch). Rows without
official code (SiMBA-S) are divided by a fixed baseline instead (``BASELINES``, the figure the issue set). Targets are
the issues' (``TARGETS``; 1.0 for rows without one). Only runs of one call compare: hosts differ between calls.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys

# (label, mode, img_size, batch) -> target ratio: the end-to-end issue's (Vim, VMamba, SiMBA, Vim-Ti at 1248) and the
# MambaVision issue's (at least as fast)
TARGETS = {
    ("Vim-S", "infer", 224, 128): 1.5,
    ("Vim-S", "train", 224, 128): 1.5,
    ("VMamba-T", "infer", 224, 128): 1.3,
    ("VMamba-T", "train", 224, 128): 1.3,
    ("VMamba-S", "infer", 224, 128): 1.3,
    ("VMamba-S", "train", 224, 128): 1.3,
    ("SiMBA-S", "train", 224, 128): 1.3,
    ("Vim-Ti", "infer", 1248, 8): 2.0,
}
# rows with no official code: img/s over this baseline (SiMBA-S training: 221 img/s when the issue was filed)
BASELINES = {("SiMBA-S", "train", 224, 128): 221.0}


class E2EFileError(ValueError):
    """An e2e.json that cannot be read as run.sh writes it."""


def _rows(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise E2EFileError(f"{path}: not a run.sh e2e.json ({type(e).__name__}: {e})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise E2EFileError(f"{path}: its 'rows' must be a list of objects")
    return rows


def ratios(path: str) -> dict[tuple, float]:
    """{(label, mode, img_size, batch): project / official img/s} of one run (or over the baseline). Rows that did
    not run (status other than "ok", img/s missing, not finite or not positive) have no ratio."""
    project, official = {}, {}
    for r in _rows(path):
        ips = r.get("img_per_s")
        if r.get("status") != "ok" or not isinstance(ips, (int, float)) or not math.isfinite(ips) or ips <= 0:
            continue
        key = (r["label"], r["mode"], r["img_size"], r["batch_size"])
        if r["side"] == "project":
            project[key] = ips
        elif r["side"].startswith("official"):
            official[key] = ips
    out = {}
    for key, ips in project.items():
        base = official.get(key, BASELINES.get(key))
        if base:
            out[key] = ips / base
    return out


def _name(key: tuple) -> str:
    label, mode, size, batch = key
    vs = " (vs 221)" if key in BASELINES else ""
    return f"{label} {mode}{vs}" if (size, batch) == (224, 128) else f"{label} {size}/{batch} {mode}{vs}"


def plot(runs: list[tuple[str, dict]], out: str) -> list[str]:
    """Writes the chart; returns one text line per row (the bars' values, the markers', the target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (first_label, first), rest = runs[0], runs[1:]
    keys = list(first)
    targets = [TARGETS.get(k, 1.0) for k in keys]
    now = [first[k] for k in keys]
    x = list(range(len(keys)))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(keys) + 2), 5.5))
    ax.bar(x, now, color=["tab:green" if r >= t else "tab:red" for r, t in zip(now, targets)], label=first_label)
    for (label, run), marker in zip(rest, itertools.cycle("D^vso<>")):
        ax.scatter(x, [run.get(k, math.nan) for k in keys], color="black", marker=marker, zorder=3, label=label)
    ax.hlines(targets, [i - 0.4 for i in x], [i + 0.4 for i in x], colors="tab:blue", linestyles="--", label="target")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    for i, r in enumerate(now):
        ax.text(i, r + 0.03, f"{r:.2f}", ha="center", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([_name(k) for k in keys], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("project / official img/s")
    ax.set_title("End to end against the official code (run.sh e2e; one call per run, hosts differ)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    lines = []
    for k, r, t in zip(keys, now, targets):
        others = "".join(f", {label} {run.get(k, math.nan):.2f}" for label, run in rest)
        lines.append(f"{_name(k):28s} {r:5.2f} (target {t}{others})")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="LABEL=E2E_JSON", help="runs: the first as bars, the others as markers")
    ap.add_argument("--out", default="e2e.png", help="the chart's path (PNG)")
    args = ap.parse_args(argv)
    runs = []
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            ap.error(f"runs: expected LABEL=PATH, got {spec!r}")
        try:
            runs.append((label, ratios(path)))
        except E2EFileError as e:
            ap.error(f"runs: {e}")
    if not runs[0][1]:
        ap.error(f"runs: {args.runs[0]!r} has no row with both sides (or a baseline)")
    for line in plot(runs, args.out):
        print(line)
    print(f"chart: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
