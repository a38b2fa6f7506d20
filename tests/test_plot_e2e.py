"""tools/plot_e2e.py: the ratios it reads from run.sh's e2e.json files, its chart and its argument errors."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

_TOOL = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "plot_e2e.py")


def _tool():
    spec = importlib.util.spec_from_file_location("plot_e2e", _TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(side, label, mode, size, batch, ips, status="ok"):
    return {"side": side, "label": label, "model": label.lower(), "mode": mode, "img_size": size, "batch_size": batch,
            "img_per_s": ips, "status": status}


def _write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"meta": {}, "rows": rows}, f)
    return str(path)


def test_ratios_pair_the_sides_and_use_the_baseline(tmp_path):
    tool = _tool()
    path = _write(tmp_path / "e2e.json", [
        _row("project", "Vim-S", "train", 224, 128, 900.0),
        _row("official_vim", "Vim-S", "train", 224, 128, 600.0),
        _row("project", "Vim-Ti", "infer", 1248, 8, 250.0),
        _row("official_vim", "Vim-Ti", "infer", 1248, 8, 200.0),
        _row("project", "SiMBA-S", "train", 224, 128, 331.5),  # no official code: over the 221
        _row("project", "SiMBA-S", "infer", 224, 128, 1200.0),  # no official, no baseline: no ratio
        _row("project", "VMamba-T", "train", 224, 128, 1000.0),
        _row("official_vmamba", "VMamba-T", "train", 224, 128, 0.0, status="error"),  # a failed side: no ratio
        _row("timm", "DeiT-Ti", "infer", 224, 128, 20000.0),
        _row("project", "Vim-Ti", "train", 224, 128, float("nan")),  # not finite: no ratio
        _row("official_vim", "Vim-Ti", "train", 224, 128, 1000.0),
    ])
    got = tool.ratios(path)
    assert got == pytest.approx({("Vim-S", "train", 224, 128): 1.5, ("Vim-Ti", "infer", 1248, 8): 1.25,
                                 ("SiMBA-S", "train", 224, 128): 1.5})


def test_chart_and_lines(tmp_path, capsys):
    tool = _tool()
    now = _write(tmp_path / "now.json", [_row("project", "Vim-Ti", "infer", 1248, 8, 250.0),
                                         _row("official_vim", "Vim-Ti", "infer", 1248, 8, 200.0)])
    before = _write(tmp_path / "before.json", [_row("project", "Vim-Ti", "infer", 1248, 8, 120.0),
                                               _row("official_vim", "Vim-Ti", "infer", 1248, 8, 200.0)])
    out = tmp_path / "e2e.png"
    assert tool.main([f"now={now}", f"before={before}", "--out", str(out)]) == 0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "Vim-Ti 1248/8 infer" in text and "1.25 (target 2.0, before 0.60)" in text


def test_bad_arguments_are_named(tmp_path, capsys):
    tool = _tool()
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "e2e.json")])  # no LABEL=
    assert "expected LABEL=PATH" in capsys.readouterr().err
    empty = _write(tmp_path / "empty.json", [_row("project", "Vim-S", "train", 224, 128, 900.0)])
    with pytest.raises(SystemExit):
        tool.main([f"x={empty}", "--out", str(tmp_path / "x.png")])
    assert "no row with both sides" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([f"x={tmp_path / 'missing.json'}"])
    assert "missing.json: not a run.sh e2e.json (FileNotFoundError" in capsys.readouterr().err
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        tool.main([f"x={listed}"])
    assert "list.json: not a run.sh e2e.json (TypeError" in capsys.readouterr().err
