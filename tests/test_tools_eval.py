"""vssm.train's validation, benchmark and FLOPs table (the library of tools/validate.py, benchmark.py, flops.py)
on tiny models (CPU)."""

import argparse
import csv
import json

import pytest
import timm
import torch

import vssm.train as vt
from vssm.train import benchmark as bench_tool
from vssm.train import flops as flops_tool
from vssm.train import validation as validate_tool

TINY_KW = ["patch_size=8", "depth=2", "embed_dim=32", "num_heads=2"]
TRAIN = [
    "--model", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-size", "32", "--dataset", "synthetic",
    "--num-classes", "10", "--synthetic-samples", "64", "--synthetic-val-samples", "48", "--batch-size", "16",
    "--workers", "0", "--no-progress", "--epochs", "1", "--model-ema", "--model-ema-decay", "0.5",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = vt.train(vt.parse_config(TRAIN + ["--output", str(out)]))
    return out, summary


def test_validate_training_checkpoint_matches_training_eval(run_dir, tmp_path):
    out, summary = run_dir
    js = tmp_path / "v.json"
    assert validate_tool.main(["--checkpoint", str(out / "last.pth"), "--dataset", "synthetic", "--workers", "0",
                               "--batch-size", "7", "--json-out", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["model"] == "deit_tiny_patch16_224" and res["weights"] == "model" and res["num_images"] == 48
    assert res["top1"] == pytest.approx(summary["final_top1"])
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert res["loss"] == pytest.approx(row["val_loss"], rel=1e-5)
    assert res["top5"] == pytest.approx(row["val_top5"])
    ema = validate_tool.validate(validate_tool.build_parser().parse_args(
        ["--checkpoint", str(out / "last.pth"), "--dataset", "synthetic", "--workers", "0", "--ema"]))
    assert ema["weights"] == "ema" and ema["top1"] == pytest.approx(row["ema_val_top1"])


def test_validate_official_format_checkpoint(run_dir, tmp_path):
    out, _ = run_dir
    # an official-style file: {"model": state_dict}, scored through timm's pretrained_cfg_overlay path
    sd = torch.load(out / "last.pth", weights_only=True)["model"]
    # official Vim/DeiT files also pickle their argparse.Namespace of training arguments
    torch.save({"model": sd, "args": argparse.Namespace(lr=5e-4, model="deit_tiny")}, tmp_path / "official.pth")
    args = ["--model", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-size", "32", "--num-classes", "10",
            "--dataset", "digits", "--workers", "0"]
    a = validate_tool.validate(validate_tool.build_parser().parse_args(args + ["--checkpoint", str(tmp_path / "official.pth")]))
    b = validate_tool.validate(validate_tool.build_parser().parse_args(
        ["--checkpoint", str(out / "last.pth"), "--dataset", "digits", "--workers", "0"]))
    # without --dataset a training checkpoint is scored on its run's dataset
    own = validate_tool.validate(validate_tool.build_parser().parse_args(
        ["--checkpoint", str(out / "last.pth"), "--workers", "0"]))
    assert own["dataset"] == "synthetic"
    assert a["weights"] == "official" and a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(vt.CheckpointError, match="corrupt"):
        validate_tool.validate(validate_tool.build_parser().parse_args(args + ["--checkpoint", str(bad)]))


def test_validate_digits_preprocessing_from_pretrained_cfg():
    args = validate_tool.build_parser().parse_args(
        ["--model", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-size", "32", "--dataset", "digits",
         "--workers", "0", "--batch-size", "128"])
    res = validate_tool.validate(args)
    assert res["num_images"] == 359  # the fixed 20% stratified split of 1797
    assert res["crop_pct"] == timm.create_model("deit_tiny_patch16_224").pretrained_cfg["crop_pct"]
    assert res["interpolation"] == "bicubic" and res["input_size"] == [3, 32, 32]


def test_benchmark_rows(tmp_path):
    args = bench_tool.build_parser().parse_args(
        ["--models", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-sizes", "32", "64", "--batch-sizes",
         "4", "2", "--precisions", "fp32", "bf16", "--warmup", "1", "--iters", "3", "--device", "cpu",
         "--out", str(tmp_path)])
    rows = bench_tool.run(args)
    # sizes pair with batch sizes (32 with 4, 64 with 2), x 2 precisions x 2 modes
    assert [(r["img_size"], r["batch_size"]) for r in rows[::4]] == [(32, 4), (64, 2)]
    assert len(rows) == 8 and all(r["status"] == "ok" and r["img_per_s"] > 0 for r in rows)
    assert all(r["img_per_s"] == pytest.approx(r["batch_size"] * 1e3 / r["ms_per_batch"]) for r in rows)
    # each step's host time is inside its measured time (on the CPU nearly all of it)
    assert all(0 < r["host_ms"] <= r["ms_per_batch"] for r in rows)
    bench_tool.write_csv(rows, str(tmp_path / "b.csv"))
    bench_tool.plot(rows, str(tmp_path / "b.png"))
    back = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert len(back) == 8 and {r["mode"] for r in back} == {"infer", "train"}
    assert all(float(r["host_ms"]) > 0 for r in back)
    assert (tmp_path / "b.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="precision"):
        bench_tool.bench_one(torch.nn.Linear(2, 2), "infer", 8, 1, "int8", torch.device("cpu"), 0, 1)


def test_benchmark_main_writes_files(tmp_path):
    assert bench_tool.main(["--models", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-sizes", "32",
                            "--batch-sizes", "2", "--warmup", "0", "--iters", "1", "--device", "cpu",
                            "--modes", "infer", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "benchmark.csv").is_file() and (tmp_path / "benchmark.png").is_file()


def test_flops_tool_json(capsys):
    assert flops_tool.main(["--model", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-size", "32",
                            "--num-classes", "10", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model = timm.create_model("deit_tiny_patch16_224", patch_size=8, depth=2, embed_dim=32, num_heads=2,
                              img_size=32, num_classes=10)
    # hand count: patch embed, 2 blocks (qkv, attention, proj, mlp), 5 layer norms, head
    t, c = 17, 32
    block = t * c * 3 * c + t * t * 2 * c + t * c * c + 2 * t * c * 4 * c
    expected = 16 * 3 * 64 * c + 2 * block + 5 * t * c * 5 + c * 10
    assert rows[0]["params"] == sum(p.numel() for p in model.parameters())
    assert rows[0]["gflops"] * 1e9 == pytest.approx(expected)
    assert rows[0]["img_size"] == 32 and rows[0]["unsupported"] == {}


def test_benchmark_kwargs_belong_to_their_model(tmp_path):
    """--model NAME KEY=VALUE gives each model its own kwargs; --model-kwargs with several models is refused."""
    args = bench_tool.build_parser().parse_args(
        ["--model", "deit_tiny_patch16_224", *TINY_KW, "--model", "resnet18", "--img-sizes", "32", "--batch-sizes", "2",
         "--warmup", "0", "--iters", "1", "--device", "cpu", "--modes", "infer"])
    assert bench_tool.model_specs(args) == [("deit_tiny_patch16_224", {"patch_size": 8, "depth": 2, "embed_dim": 32,
                                                                       "num_heads": 2}), ("resnet18", {})]
    rows = bench_tool.run(args)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["model_kwargs"] == "patch_size=8, depth=2, embed_dim=32, num_heads=2" and rows[1]["model_kwargs"] == ""
    assert rows[1]["params_m"] == pytest.approx(sum(p.numel() for p in timm.create_model("resnet18").parameters()) / 1e6)
    both = bench_tool.build_parser().parse_args(["--models", "deit_tiny_patch16_224", "resnet18", "--model-kwargs", "depth=2"])
    with pytest.raises(ValueError, match="--model NAME KEY=VALUE"):
        bench_tool.model_specs(both)


def test_help_prints_each_default_once(capsys):
    with pytest.raises(SystemExit):
        vt.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 2x batch_size)" in text and "(default: 2x batch_size) (default" not in text
    assert "(default: 0.0005)" in text and text.count("default: None") == 0


def test_flops_tool_needs_a_model():
    with pytest.raises(ValueError, match="--model"):
        flops_tool.main([])


def test_paper_table_covers_the_zoo():
    names = flops_tool.zoo_names()
    assert names, "no vssm models registered"
    assert set(names) <= set(flops_tool.PAPER), sorted(set(names) - set(flops_tool.PAPER))


def test_flops_zoo_rows_compare_like_with_like(monkeypatch, capsys):
    """--all: SiMBA rows compare the module-layer count (the paper's counter), others the full count."""
    calls = []

    def fake_measure(name, img_size, num_classes=1000, kwargs=None):
        calls.append((name, img_size, num_classes))
        return {"model": name, "img_size": img_size, "params": 15_300_000, "params_m": 15.3, "gflops": 4.8,
                "gflops_modules": 2.4, "by_operator": {}, "unsupported": {}}

    monkeypatch.setattr(flops_tool, "measure", fake_measure)
    monkeypatch.setattr(flops_tool, "zoo_names", lambda: ["simba_s", "vmamba_tiny_s1l8"])
    rows = flops_tool.run(flops_tool.build_parser().parse_args(["--all", "--json"]))
    table = flops_tool.run(flops_tool.build_parser().parse_args(["--all"]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == flops_tool.ZOO_HEADER and "params" in lines[0] and "GFLOPs" in lines[0]
    assert len(lines) == 3 and lines[1].startswith("simba_s") and table == rows
    simba, vmamba = rows
    assert calls == [("simba_s", 224, 1000), ("vmamba_tiny_s1l8", 224, 1000)] * 2  # each model counted once a run
    assert simba["gflops_compared"] == 2.4 and simba["gflops_diff_pct"] == pytest.approx(0.0)
    assert vmamba["gflops_compared"] == 4.8 and vmamba["gflops_diff_pct"] == pytest.approx(100 * (4.8 - 4.9) / 4.9)
    assert vmamba["params_diff_pct"] == pytest.approx(100 * (15.3 - 30.0) / 30.0)


def test_flops_modules_count_leaves_out_functional_ops():
    """The module-layer count excludes the scan (and einsum/FFT); the full count includes it."""
    from vssm.flops import count_flops

    model = timm.create_model("vim_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=1, num_classes=10)
    row = flops_tool.measure("vim_tiny_patch16_224", 32, 10, {"patch_size": 8, "embed_dim": 32, "depth": 1})
    full = count_flops(model, 32)
    scan = full["by_operator"]["selective_scan_fwd"]
    assert scan > 0 and row["gflops"] * 1e9 == full["flops"]
    assert row["gflops_modules"] * 1e9 == pytest.approx(full["flops"] - scan)


def test_compiled_model_equals_eager_and_rejects_unknown_modes():
    """`--compile MODE` of benchmark / validate: torch.compile through the custom scan op, same outputs."""
    from vssm.train.build import compiled

    torch.manual_seed(0)
    m = timm.create_model("vim_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=1).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(m, "default")(x), m(x), rtol=1e-5, atol=1e-5)
    assert compiled(m, None) is m
    with pytest.raises(ValueError, match="--compile"):
        compiled(m, "fastest")


def test_phase_breakdown_attributes_kernels_by_launch():
    """`phase_breakdown` on a hand-made trace: each kernel counts in the phase whose CPU range was open at its launch
    (correlation ids), whenever it ran; GPU ms is the union of the phase's kernels (two streams overlapping count
    once), idle the gaps between its first start and last end; the GPU-side copies of the ranges and launches
    outside every phase are ignored; a phase that did not run reads None."""
    def ev(cat, name, ts, dur, corr=None):
        e = {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}
        if corr is not None:
            e["args"] = {"correlation": corr}
        return e

    events = [
        ev("user_annotation", "phase:fwd", 0, 100), ev("gpu_user_annotation", "phase:fwd", 5, 500),
        ev("user_annotation", "phase:bwd", 110, 190),
        ev("cuda_runtime", "cudaLaunchKernel", 10, 2, corr=1), ev("cuda_driver", "cuLaunchKernelEx", 50, 2, corr=2),
        ev("cuda_runtime", "cudaLaunchKernel", 60, 2, corr=3), ev("cuda_runtime", "cudaLaunchKernel", 120, 2, corr=4),
        ev("cuda_runtime", "cudaLaunchKernel", 105, 2, corr=5),  # between the phases
        ev("kernel", "a", 20, 10, corr=1), ev("kernel", "b", 60, 40, corr=2), ev("gpu_memcpy", "c", 90, 30, corr=3),
        ev("kernel", "d", 130, 270, corr=4), ev("kernel", "e", 125, 5, corr=5),
    ]
    res = bench_tool.phase_breakdown(events)
    assert res["launches"] == 5
    assert res["fwd_host_ms"] == pytest.approx(0.100) and res["bwd_host_ms"] == pytest.approx(0.190)
    # fwd: [20, 30] and [60, 100] u [90, 120] = 10 + 60 us busy over 20..120: 30 us idle (the copy ran into bwd's time)
    assert res["fwd_gpu_ms"] == pytest.approx(0.070) and res["fwd_idle_ms"] == pytest.approx(0.030)
    assert res["bwd_gpu_ms"] == pytest.approx(0.270) and res["bwd_idle_ms"] == pytest.approx(0.0)
    assert res["opt_host_ms"] is None and res["opt_gpu_ms"] is None and res["opt_idle_ms"] is None


def test_benchmark_phases_on_cpu(tmp_path, capsys):
    """--phases profiles one more step: on the CPU the host ms of each phase (train: forward, backward, optimizer;
    infer: the forward only), no GPU figures, and a line per row; the columns reach the CSV."""
    args = bench_tool.build_parser().parse_args(
        ["--models", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-sizes", "32", "--batch-sizes", "2",
         "--warmup", "1", "--iters", "2", "--device", "cpu", "--phases", "--out", str(tmp_path)])
    rows = bench_tool.run(args)
    infer, train = rows
    assert infer["fwd_host_ms"] > 0 and infer["bwd_host_ms"] is None and infer["opt_host_ms"] is None
    assert all(train[f"{p}_host_ms"] > 0 for p in bench_tool.PHASES)
    assert all(r["launches"] is None and r["fwd_gpu_ms"] is None and r["fwd_idle_ms"] is None for r in rows)
    out = capsys.readouterr().out
    assert "fwd host" in out and "opt host" in out
    bench_tool.write_csv(rows, str(tmp_path / "b.csv"))
    back = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert float(back[1]["bwd_host_ms"]) > 0 and back[0]["bwd_host_ms"] == ""
    assert bench_tool.plot_phases(rows, str(tmp_path / "p.png")) and (tmp_path / "p.png").stat().st_size > 1000
    gpu_like = [dict(train, device="cuda", launches=1702, fwd_gpu_ms=23.0, fwd_idle_ms=25.0, bwd_gpu_ms=96.8,
                     bwd_idle_ms=4.0, opt_gpu_ms=1.1, opt_idle_ms=0.1)]
    assert bench_tool.plot_phases(gpu_like, str(tmp_path / "g.png")) and (tmp_path / "g.png").stat().st_size > 1000
    assert not bench_tool.plot_phases([dict(train, fwd_host_ms=None)], str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()
    # without --phases the columns stay empty
    plain = bench_tool.run(bench_tool.build_parser().parse_args(
        ["--models", "deit_tiny_patch16_224", "--model-kwargs", *TINY_KW, "--img-sizes", "32", "--batch-sizes", "2",
         "--warmup", "0", "--iters", "1", "--device", "cpu", "--modes", "infer"]))
    assert "fwd_host_ms" not in plain[0]
