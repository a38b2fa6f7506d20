"""vssm.train (and tools/train.py) on CPU: end to end, torchrun with two gloo processes, kill -9 and resume with
data-loader workers, timm-readable checkpoints, bad checkpoints, non-finite losses, learning-rate scaling."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import yaml

import vssm.train as vt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a 2-block DeiT of ~30k parameters on 32x32 synthetic images: seconds per epoch on one CPU core
TINY = [
    "--model", "deit_tiny_patch16_224", "--model-kwargs", "patch_size=8", "depth=2", "embed_dim=32", "num_heads=2",
    "--img-size", "32", "--dataset", "synthetic", "--num-classes", "10", "--synthetic-samples", "128",
    "--synthetic-val-samples", "32", "--batch-size", "16", "--warmup-epochs", "1", "--workers", "0",
    "--no-progress", "--lr-base", "2e-3", "--drop-path", "0.1", "--seed", "3",
]


def _env():
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # same thread count in every process: bitwise-reproducible CPU math
    return env


def _run(args, **kw):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), *args], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=240, **kw)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_train_end_to_end_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    summary = vt.train(vt.parse_config(TINY + ["--epochs", "1", "--output", str(out), "--model-ema"]))
    for name in ("last.pth", "best.pth", "plot.png", "metrics.csv", "metrics.jsonl", "summary.json", "config.yaml"):
        assert (out / name).is_file(), name
    ckpt = vt.load_checkpoint(str(out / "last.pth"))
    assert ckpt["epochs_done"] == 1 and ckpt["epoch"] == 0 and ckpt["step"] == 128 // 16
    assert ckpt["ema"] is not None and ckpt["optimizer"]["state"]
    with open(out / "summary.json") as f:
        on_disk = json.load(f)
    assert on_disk["epochs"] == 1 and on_disk["final_top1"] == summary["final_top1"]
    assert 0.0 <= on_disk["final_top1"] <= 100.0
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert len(rows) == 1 and rows[0]["val_top1"] == on_disk["final_top1"] and "ema_val_top1" in rows[0]
    # the saved config resolves the flags: reloading it reproduces the run's settings
    with open(out / "config.yaml") as f:
        saved = yaml.safe_load(f)
    assert saved["model_kwargs"] == {"patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}
    assert saved["lr_base"] == 2e-3 and saved["model_ema"] is True
    # no-weight-decay groups of the optimizer train() built (saved in the checkpoint) must hold exactly the 1-d
    # params (norm weights, biases) and the model's no_weight_decay() names
    model = vt.model_from_config(vt.parse_config(TINY), 10)
    named = dict(model.named_parameters())
    no_decay = [n for n, p in named.items() if p.ndim <= 1 or n in model.no_weight_decay()]
    assert {"pos_embed", "cls_token", "norm.weight", "blocks.0.attn.qkv.bias"} <= set(no_decay)
    groups = ckpt["optimizer"]["param_groups"]
    n_zero = sum(len(g["params"]) for g in groups if g["weight_decay"] == 0.0)
    n_decay = sum(len(g["params"]) for g in groups if g["weight_decay"] > 0.0)
    assert (n_zero, n_decay) == (len(no_decay), len(named) - len(no_decay))


def test_config_file_and_command_line_override(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model: deit_tiny_patch16_224\ndataset: digits\nlr: 0.001\nmodel_kwargs: {depth: 2}\n")
    cfg = vt.parse_config(["--config", str(cfg_file), "--lr", "0.01", "--model-kwargs", "embed_dim=64"])
    assert cfg.lr == 0.01 and cfg.dataset == "digits"
    assert cfg.model_kwargs == {"depth": 2, "embed_dim": 64}
    cfg_file.write_text("model: x\ndataset: digits\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown keys.*learning_rate"):
        vt.parse_config(["--config", str(cfg_file)])
    cfg_file.write_text("model: x\ndataset: digits\nepochs: ten\n")
    with pytest.raises(ValueError, match="`epochs` must be int"):
        vt.parse_config(["--config", str(cfg_file)])
    with pytest.raises(ValueError, match="data_dir"):
        vt.parse_config(["--model", "x"])


def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(ROOT, "tools", "train.py"), *TINY, "--epochs", "1", "--epoch-steps", "3", "--output", str(out)]
    res = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    ckpt = vt.load_checkpoint(str(out / "last.pth"))
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    # the two ranks drew different random streams (seed + rank)
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    # global batch 2 x 16 with AdamW: timm's rule scales lr_base by sqrt(32 / 512)
    assert vt.parse_config(TINY).lr_base * (32 / 512) ** 0.5 == pytest.approx(ckpt["scheduler"]["base_values"][0])
    # only rank 0 wrote: one "done" line, no temporary files left behind
    assert res.stdout.count("done in") == 1
    assert not [p for p in os.listdir(out) if ".tmp" in p]


def _start(args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "train.py"), *args], env=_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_mid_epoch_then_resume_is_bit_identical_with_workers(tmp_path):
    """kill -9 in the middle of epoch 2 of a run with two loader workers, EMA, mixup/cutmix and repeated
    augmentation; --resume auto ends on the uninterrupted run's weights, EMA and metrics files, byte for byte."""
    args = TINY + ["--epochs", "3", "--synthetic-samples", "192", "--model-ema", "--model-ema-decay", "0.9",
                   "--workers", "2", "--mixup", "0.8", "--cutmix", "1.0", "--repeated-aug", "--log-interval", "1"]
    ref = _start(args + ["--output", str(tmp_path / "ref")])  # runs beside the killed one: two cores
    run = tmp_path / "killed"
    proc = _start(args + ["--output", str(run)])
    seen = []
    for line in proc.stdout:  # one log line per step: kill at the 4th step of epoch 2
        seen.append(line)
        if line.startswith("epoch 2 [4/"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    assert not (run / "summary.json").exists()
    assert vt.load_checkpoint(str(run / "last.pth"))["epochs_done"] == 1

    resumed = _run(args + ["--output", str(run), "--resume", "auto"])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    ref_out = ref.communicate(timeout=240)[0]
    assert ref.returncode == 0, ref_out[-3000:]
    a = torch.load(tmp_path / "ref" / "last.pth", weights_only=True)
    b = torch.load(run / "last.pth", weights_only=True)
    for key in ("state_dict", "state_dict_ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    for name in ("metrics.csv", "metrics.jsonl"):
        assert (tmp_path / "ref" / name).read_bytes() == (run / name).read_bytes(), name
    hist = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["epoch"] for r in hist] == [1, 2, 3]


def test_checkpoints_read_by_timm(tmp_path):
    """timm.models.load_checkpoint (use_ema picks state_dict_ema) and resume_checkpoint read our files, and
    files of the earlier layout (epoch = epochs done, EMA under "ema") still resume and validate."""
    from timm.models import load_checkpoint, resume_checkpoint

    out = tmp_path / "run"
    cfg = vt.parse_config(TINY + ["--epochs", "1", "--epoch-steps", "3", "--model-ema", "--model-ema-decay", "0.5",
                                  "--output", str(out)])
    vt.train(cfg)
    path = str(out / "last.pth")
    ckpt = vt.load_checkpoint(path)
    model = vt.model_from_config(cfg, 10)
    load_checkpoint(model, path, use_ema=True)
    own = model.state_dict()
    assert all(torch.equal(own[k], ckpt["state_dict_ema"][k]) for k in own)
    assert not all(torch.equal(own[k], ckpt["state_dict"][k]) for k in own)  # the EMA is not the model
    load_checkpoint(model, path, use_ema=False)
    assert all(torch.equal(model.state_dict()[k], ckpt["state_dict"][k]) for k in own)
    # timm's resume: weights and optimizer back, and the epoch to start from is the one after the saved one
    fresh = vt.model_from_config(cfg, 10)
    from timm.optim import create_optimizer_v2

    opt = create_optimizer_v2(fresh, opt="adamw", lr=1e-3, weight_decay=0.05)
    assert resume_checkpoint(fresh, path, optimizer=opt) == 1
    assert all(torch.equal(fresh.state_dict()[k], ckpt["state_dict"][k]) for k in own)
    assert opt.state_dict()["state"].keys() == ckpt["optimizer"]["state"].keys()
    # official-style loaders read "model"; the aliases are the same tensors, stored once
    assert ckpt["model"].keys() == ckpt["state_dict"].keys() and ckpt["ema"].keys() == ckpt["state_dict_ema"].keys()
    plain = tmp_path / "plain.pth"
    torch.save({k: ckpt[k] for k in ("state_dict", "state_dict_ema", "optimizer")}, plain)
    assert os.path.getsize(path) < os.path.getsize(plain) + 50_000  # not twice the weights

    # the earlier layout (version 1): resumes (nothing left to train) and validates, EMA included
    old = {k: v for k, v in ckpt.items() if k not in ("state_dict", "state_dict_ema", "arch", "metric", "epochs_done")}
    old.update(version=1, epoch=1)
    old["config"] = {("base_lr" if k == "lr_base" else "lr_base_batch" if k == "lr_base_size" else k): v
                     for k, v in ckpt["config"].items() if k != "lr_base_scale"}
    torch.save(old, tmp_path / "old.pth")
    again = vt.parse_config(TINY + ["--epochs", "1", "--epoch-steps", "3", "--model-ema", "--model-ema-decay", "0.5",
                                    "--lr-base-scale", "linear",  # what the earlier key names meant
                                    "--output", str(tmp_path / "again"), "--resume", str(tmp_path / "old.pth")])
    summary = vt.train(again)
    assert summary["epochs"] == 1 and summary["steps"] == 3
    assert not (tmp_path / "again" / "last.pth").exists()  # nothing left to train, nothing written over
    res = vt.validate(checkpoint=str(tmp_path / "old.pth"), workers=0, ema=True)
    new = vt.validate(checkpoint=path, workers=0, ema=True)
    assert res["loss"] == new["loss"] and res["weights"] == "ema"


def test_lr_follows_timm_convention_and_warns_below_min_lr():
    cfg = vt.parse_config(TINY + ["--batch-size", "64"])
    assert vt.resolve_lr(cfg) == pytest.approx(2e-3 * (64 / 512) ** 0.5)  # AdamW: square root (timm's rule)
    sgd = vt.parse_config(TINY + ["--batch-size", "64", "--opt", "sgd"])
    assert vt.resolve_lr(sgd) == pytest.approx(2e-3 * 64 / 512)  # SGD: linear
    assert vt.resolve_lr(cfg, world_size=8) == pytest.approx(2e-3)
    small = vt.parse_config(TINY + ["--batch-size", "2", "--lr-base-scale", "linear", "--lr-base", "5e-4"])
    with pytest.warns(UserWarning, match=r"learning rate 1\.95e-06 .* below min_lr 1e-05"):
        vt.resolve_lr(small)
    with pytest.warns(UserWarning, match="below min_lr"):
        vt.resolve_lr(vt.parse_config(TINY + ["--lr", "1e-6"]))


def test_failed_run_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output is runs/<model>-<time> under the working directory
    with pytest.raises(ValueError, match="not a timm model.*vim_tiny_patch16_224"):
        vt.parse_config(TINY + ["--model", "vim_tiny_patch16_22"])
    with pytest.raises(ValueError, match="model_kwargs: .*no_such_arg"):
        vt.train(vt.parse_config(TINY + ["--epochs", "1", "--model-kwargs", "no_such_arg=1"]))
    with pytest.raises(ValueError, match="model_kwargs: .*no_such_arg"):
        vt.train(vt.parse_config(TINY + ["--epochs", "1", "--output", "named", "--model-kwargs", "no_such_arg=1"]))
    assert os.listdir(tmp_path) == []


def test_corrupt_and_mismatched_checkpoints_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00garbage, not a zip file" * 10)
    with pytest.raises(vt.CheckpointError, match="corrupt"):
        vt.load_checkpoint(str(bad))
    with pytest.raises(vt.CheckpointError, match="does not exist"):
        vt.load_checkpoint(str(tmp_path / "missing.pth"))

    out = tmp_path / "run"
    vt.train(vt.parse_config(TINY + ["--epochs", "1", "--epoch-steps", "1", "--output", str(out)]))
    data = (out / "last.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(vt.CheckpointError, match="corrupt, truncated"):
        vt.load_checkpoint(str(tmp_path / "truncated.pth"))
    # resuming a run of another architecture
    other = TINY + ["--model-kwargs", "depth=3", "--output", str(tmp_path / "o"), "--resume", str(out / "last.pth")]
    with pytest.raises(vt.CheckpointError, match="missing keys.*blocks.2"):
        vt.train(vt.parse_config(other + ["--epochs", "1"]))
    # a plain state_dict is not a training checkpoint
    torch.save({"model": _weights(out / "last.pth")}, tmp_path / "plain.pth")
    with pytest.raises(vt.CheckpointError, match="not a training checkpoint"):
        vt.train(vt.parse_config(TINY + ["--epochs", "1", "--output", str(tmp_path / "p"),
                                                         "--resume", str(tmp_path / "plain.pth")]))
    # the command line turns these into one line and exit code 2
    res = _run(TINY + ["--epochs", "1", "--output", str(tmp_path / "q"), "--resume", str(bad)])
    assert res.returncode == 2 and "corrupt" in res.stderr and "Traceback" not in res.stderr


def test_run_folder_rules_and_changed_schedule_on_resume(tmp_path):
    out = tmp_path / "run"
    base = TINY + ["--epochs", "1", "--epoch-steps", "1", "--output", str(out)]
    vt.train(vt.parse_config(base))
    before = (out / "last.pth").read_bytes()
    # a second run into the same folder without --resume must not overwrite it
    with pytest.raises(ValueError, match="already holds a run"):
        vt.train(vt.parse_config(base))
    assert (out / "last.pth").read_bytes() == before
    # resuming with a longer schedule would silently keep the old cosine: refused, naming the key
    with pytest.raises(vt.CheckpointError, match=r"epochs: 1 -> 3"):
        vt.train(vt.parse_config(TINY + ["--epochs", "3", "--epoch-steps", "1", "--output", str(out),
                                                         "--resume", "auto"]))
    with pytest.raises(ValueError, match="needs `output`"):
        vt.train(vt.parse_config(TINY + ["--epochs", "1", "--resume", "auto"]))


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("lr: 1e-3\nmin_lr: 5e-6\nepochs: 2\n")  # YAML 1.1 reads these as strings
    cfg = vt.parse_config(["--config", str(cfg_file), *TINY])
    assert cfg.lr == 1e-3 and cfg.min_lr == 5e-6 and isinstance(cfg.lr, float)


class _NaNAfter(nn.Module):
    """A linear classifier whose output turns NaN from its `bad_call`-th training forward on."""

    def __init__(self, num_classes, bad_call):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, num_classes)
        self.calls, self.bad_call = 0, bad_call

    def forward(self, x):
        out = self.fc(x.flatten(1))
        if self.training:
            self.calls += 1
            if self.calls >= self.bad_call:
                out = out * float("nan")
        return out


def test_nan_loss_stops_naming_the_step_and_keeps_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "nan"
    with pytest.raises(vt.NonFiniteLossError, match=r"epoch 2, batch 3/8, optimizer step 11"):
        vt.train(vt.parse_config(TINY + ["--epochs", "3", "--output", str(out)]), model=_NaNAfter(10, bad_call=8 + 3))
    ckpt = vt.load_checkpoint(str(out / "last.pth"))
    assert ckpt["epochs_done"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_nan_loss_skip_policy_is_bounded(tmp_path):
    class _Flaky(_NaNAfter):
        def forward(self, x):
            out = self.fc(x.flatten(1))
            if self.training:
                self.calls += 1
                if self.calls in (2, 5):
                    out = out * float("nan")
            return out

    summary = vt.train(vt.parse_config(
        TINY + ["--epochs", "1", "--output", str(tmp_path / "s"), "--nan-policy", "skip", "--max-nan-skips", "2"]),
        model=_Flaky(10, 0))
    assert summary["skipped_steps"] == 2 and summary["steps"] == 8 - 2
    with pytest.raises(vt.NonFiniteLossError, match="more than max_nan_skips=1"):
        vt.train(vt.parse_config(
            TINY + ["--epochs", "1", "--output", str(tmp_path / "t"), "--nan-policy", "skip", "--max-nan-skips", "1"]),
            model=_Flaky(10, 0))


def test_grad_accumulation_matches_large_batch(tmp_path):
    """Two accumulated batches of 8 step like one batch of 16 (no dropout, no drop-path)."""
    base = TINY + ["--epochs", "1", "--drop-path", "0", "--smoothing", "0", "--epoch-steps", "4", "--lr", "1e-3"]
    vt.train(vt.parse_config(base + ["--output", str(tmp_path / "a")]))
    vt.train(vt.parse_config(base + ["--output", str(tmp_path / "b"), "--batch-size", "8",
                                                     "--accum-steps", "2", "--epoch-steps", "8"]))
    a, b = _weights(tmp_path / "a" / "last.pth"), _weights(tmp_path / "b" / "last.pth")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_configs_cover_every_registered_model_and_parse():
    import glob

    import timm

    import vssm  # noqa: F401

    files = sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*.yaml")))
    named = {}
    for path in files:
        cfg = vt.parse_config(["--config", path, "--data-dir", "/data/imagenet"])
        assert cfg.model in timm.list_models(), f"{path}: {cfg.model} is not a registered model"
        assert os.path.basename(path) == cfg.model + ".yaml"
        named[cfg.model] = cfg
    # aliases of official names, and the MambaVision 21k / high-resolution variants (no published recipe), have none
    zoo = [
        n for m in ("vim", "vmamba", "simba", "mambavision") for n in timm.list_models(module=m)
        if "bimambav2" not in n and not n.startswith("mamba_vision_") and not n.endswith("_21k")
    ]
    assert sorted(named) == sorted(zoo)
    # the recipes' global learning rates at 8 GPUs: Vim-Ti 1e-3 (5e-4 x 1024/512), VMamba 1e-3, SiMBA 2e-3
    for name, lr in (("vim_tiny_patch16_224", 1e-3), ("vmamba_tiny_s1l8", 1e-3), ("simba_s", 2e-3)):
        c = named[name]
        # the recipes' files name the earlier keys (base_lr, lr_base_batch): read as lr_base / lr_base_size, linear
        assert c.lr_base_scale == "linear" and vt.resolve_lr(c, world_size=8) == pytest.approx(lr)
    quick = vt.parse_config(["--config", os.path.join(ROOT, "configs", "quickstart.yaml")])
    assert quick.dataset == "digits" and quick.model in timm.list_models()


def test_imagefolder_with_deit_augmentation_and_validate(tmp_path):
    """An ImageFolder (train/, val/) through timm's pipeline: RandAugment, random erasing, mixup/cutmix,
    repeated augmentation; then validate.py on the run's checkpoint scores the same val set."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    for split, n in (("train", 8), ("val", 3)):
        for c, name in enumerate(("cat", "dog")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(n):
                img = (rng.rand(40, 48, 3) * 255 * (0.3 + 0.7 * c)).astype(np.uint8)
                Image.fromarray(img).save(tmp_path / "data" / split / name / f"{i}.png")
    args = ["--model", "deit_tiny_patch16_224", "--model-kwargs", "patch_size=8", "depth=1", "embed_dim=32",
            "num_heads=2", "--img-size", "32", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"),
            "--batch-size", "4", "--epochs", "1", "--workers", "0", "--no-progress", "--aa", "rand-m9-mstd0.5-inc1",
            "--reprob", "0.25", "--mixup", "0.8", "--cutmix", "1.0", "--repeated-aug", "--output", str(tmp_path / "r")]
    summary = vt.train(vt.parse_config(args))
    assert summary["num_classes"] == 2 and summary["steps"] == 16 // 4
    res = vt.validate(checkpoint=str(tmp_path / "r" / "last.pth"), data_dir=str(tmp_path / "data"), workers=0)
    assert res["num_images"] == 6 and res["top1"] == pytest.approx(summary["final_top1"])


def test_randaugment_posterize_zero_bits_gives_black_image():
    """DeiT's RandAugment can ask Pillow to keep 0 bits, which current Pillow refuses; the patch maps it
    to the black image older Pillow returned, and leaves other levels to Pillow."""
    import numpy as np
    from PIL import Image
    from timm.data import auto_augment

    from vssm.data import patch_timm_posterize

    patch_timm_posterize()
    op = auto_augment.NAME_TO_OP["PosterizeIncreasing"]
    img = Image.fromarray((np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8))
    assert np.array(op(img, 0)).max() == 0 and op(img, 0).size == img.size
    assert (np.array(op(img, 2)) == (np.array(img) & 0b11000000)).all()
    assert op(img, 8) is img
