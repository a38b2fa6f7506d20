"""vssm.detection: torchvision detectors on vssm backbones, backbone export / import, fine-tuning groups.

One tiny configuration per family (Vim, VMamba, SiMBA) on 96x128 images, so the file runs on a CPU in well
under a minute and a half; the detector heads are shrunk too (the time should go to the backbones under test).
"""

import json
import os
import shutil

import numpy as np
import pytest
import timm
import torch
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

import vssm  # noqa: F401  (registers the models)
import vssm.detection as det

FAMILIES = {
    "vim": ("vim_tiny_patch16_224", dict(depth=2, embed_dim=32)),
    "vmamba": ("vmamba_tiny_s1l8", dict(depths=(1, 1, 1, 1), embed_dim=16, drop_path_rate=0.0)),
    "simba": (
        "simba_s",
        dict(stem_hidden_dim=8, embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1), mlp_ratios=(2, 2, 2, 2), d_state=4),
    ),
}
VIM, VMAMBA, SIMBA = FAMILIES["vim"], FAMILIES["vmamba"], FAMILIES["simba"]
FPN = 32
SMALL = dict(
    min_size=96,
    max_size=128,
    rpn_pre_nms_top_n_train=100,
    rpn_post_nms_top_n_train=50,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    rpn_batch_size_per_image=32,
    box_batch_size_per_image=32,
    box_detections_per_img=10,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors this small gain nothing from intra-op threads, and on a busy machine threads cost several times
    the work (this file: ~25 s with one thread, ~90 s with two on a loaded 2-core runner)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _heads(masks: bool, num_classes: int = 3) -> dict:
    out = dict(box_head=TwoMLPHead(FPN * 7 * 7, 64), box_predictor=FastRCNNPredictor(64, num_classes))
    if masks:
        out.update(mask_head=MaskRCNNHeads(FPN, [16, 16], 1), mask_predictor=MaskRCNNPredictor(16, 16, num_classes))
    return out


def _batch():
    """Two 96x128 images, each with two boxes and their box-shaped masks."""
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 96, 128, generator=g) for _ in range(2)]
    targets = []
    for shift in (0, 8):
        boxes = torch.tensor([[8.0, 12.0, 60.0, 70.0], [50.0, 20.0, 120.0, 90.0]]) + shift / 2
        masks = torch.zeros(2, 96, 128, dtype=torch.uint8)
        for j, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
            masks[j, y0:y1, x0:x1] = 1
        targets.append(dict(boxes=boxes, labels=torch.tensor([1, 2]), masks=masks))
    return images, targets


def _perturb(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter off its init, so that weights that did not load show up in the features."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return module


def _features(backbone: det.FeatureBackbone, size=(96, 128)) -> list:
    backbone.eval()
    with torch.no_grad():
        return backbone(torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1)))


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and torch.equal(x, y)


# ------------------------------------------------------------------------------------------- detectors


@pytest.mark.parametrize("family", list(FAMILIES))
def test_detectors_train_step_and_eval_at_two_sizes(family):
    name, kwargs = FAMILIES[family]
    images, targets = _batch()
    for builder, masks in ((det.fasterrcnn, False), (det.maskrcnn, True)):
        torch.manual_seed(0)
        model = builder(name, None, fpn_channels=FPN, model_kwargs=kwargs, **SMALL, **_heads(masks))
        model.train()
        losses = model(images, targets)
        expected = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} | ({"loss_mask"} if masks else set())
        assert set(losses) == expected
        assert all(torch.isfinite(v) for v in losses.values()), losses
        sum(losses.values()).backward()
        body = model.backbone.body.model
        grads = {n: p.grad for n, p in body.named_parameters()}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), [n for n, g in grads.items() if g is None]
        stem = det.backbone_layers(body)[0]
        assert any(grads[n].abs().sum() > 0 for n in stem), "no gradient reached the backbone's first layer"

        model.eval()
        with torch.no_grad():
            (landscape,) = model([images[0]])  # the backbone sees 96x128
            portrait = model([torch.rand(3, 128, 96), torch.rand(3, 100, 70)])  # 128x96 (the second, resized)
        for out, (h, w) in zip([landscape, *portrait], [(96, 128), (128, 96), (100, 70)]):
            assert out["boxes"].shape[1] == 4 and torch.isfinite(out["boxes"]).all()
            if len(out["boxes"]):
                assert out["boxes"][:, 2].max() <= w and out["boxes"][:, 3].max() <= h
            if masks:
                assert out["masks"].shape[1:] == (1, h, w)


def test_retinanet_strides_8_to_128():
    name, kwargs = SIMBA
    model = det.retinanet(name, 3, fpn_channels=FPN, model_kwargs=kwargs, min_size=96, max_size=128)
    assert model.backbone.strides == [8, 16, 32, 64, 128]
    images, targets = _batch()
    losses = model(images, [{k: t[k] for k in ("boxes", "labels")} for t in targets])
    assert set(losses) == {"classification", "bbox_regression"} and all(torch.isfinite(v) for v in losses.values())


def test_vim_pyramid_follows_any_size():
    """Non-square sizes that are not multiples of 32, changing call to call; stride-8 Vim's grid is size / 8."""
    for name in ("vim_tiny_patch16_224", "vim_tiny_patch16_stride8_224"):
        backbone = det.backbone_with_fpn(name, fpn_channels=16, depth=1, embed_dim=32).eval()
        assert backbone.body.model.dynamic_img_size
        for h, w in ((72, 100), (128, 160), (64, 64)):
            with torch.no_grad():
                maps = backbone(torch.rand(1, 3, h, w))
            ph, pw = -(-h // 32) * 32, -(-w // 32) * 32  # the backbone pads to its coarsest stride
            assert {k: tuple(v.shape[-2:]) for k, v in maps.items()} == {
                "0": (ph // 4, pw // 4),
                "1": (ph // 8, pw // 8),
                "2": (ph // 16, pw // 16),
                "3": (ph // 32, pw // 32),
                "pool": (-(-ph // 64), -(-pw // 64)),
            }
            assert all(v.shape[1] == 16 for v in maps.values())


def test_hierarchical_strides_pick_stages():
    name, kwargs = VMAMBA
    backbone = det.backbone_with_fpn(name, fpn_channels=16, strides=(8, 16, 32), **kwargs)
    assert backbone.body.out_indices == [1, 2, 3] and backbone.strides == [8, 16, 32, 64]
    assert [f["num_chs"] for f in backbone.body.feature_info] == [32, 64, 128]


# ------------------------------------------------------------------------------------- export / import


@pytest.mark.parametrize("family", list(FAMILIES))
def test_export_load_round_trip_gives_identical_features(family, tmp_path):
    name, kwargs = FAMILIES[family]
    torch.manual_seed(0)
    source = _perturb(det.FeatureBackbone(name, **kwargs))
    det.save_backbone(source, tmp_path / "bb")
    loaded = det.load_backbone(tmp_path / "bb.safetensors")
    _assert_same(_features(source), _features(loaded))
    described = json.loads((tmp_path / "bb.json").read_text())
    assert described["model_name"] == name and described["feature_info"] == source.feature_info
    assert described["model_kwargs"] == json.loads(json.dumps(source.model_kwargs))
    assert not any(k.startswith(("head.", "classifier.head.", "aux_head.")) for k in loaded.model.state_dict())
    # the export also loads as a detector's checkpoint
    backbone = det.backbone_with_fpn(name, checkpoint=str(tmp_path / "bb.safetensors"), fpn_channels=16, **kwargs)
    assert backbone.load_report.kind == "export" and not backbone.load_report.missing
    _assert_same(_features(source), _features(backbone.body))


def _training_checkpoint(path, name, kwargs, img_size=None, num_classes=5):
    torch.manual_seed(0)
    size = {} if img_size is None else {"img_size": img_size}
    model = _perturb(timm.create_model(name, num_classes=num_classes, **size, **kwargs))
    ckpt = {
        "format": det.TRAINING_FORMAT,
        "version": 1,
        "model_name": name,
        "config": {"model": name, "model_kwargs": json.loads(json.dumps(kwargs)), "img_size": img_size},
        "model": model.state_dict(),
        "ema": None,
        "optimizer": {"state": {}, "param_groups": []},
    }
    torch.save(ckpt, path)
    return model


def test_export_training_checkpoint_library(tmp_path):
    name, kwargs = VMAMBA
    full = _training_checkpoint(tmp_path / "last.pth", name, kwargs)
    described, report = det.export_backbone(tmp_path / "last.pth", tmp_path / "out")
    assert described["model_name"] == name and described["source_kind"] == "training"
    assert [f["reduction"] for f in described["feature_info"]] == [4, 8, 16, 32]
    # the classifier is left behind; the per-stage output norms are new (not in a classification model)
    assert report.unused and all(k.startswith("classifier.") for k in report.unused)
    assert report.missing == report.missing_new and all(k.startswith("outnorm") for k in report.missing)
    loaded = det.load_backbone(tmp_path / "out.json")
    own, trained = loaded.model.state_dict(), full.state_dict()
    assert all(torch.equal(own[k], trained[k]) for k in report.loaded)
    # an export of all four stages also serves a backbone of the last three
    backbone = det.backbone_with_fpn(name, checkpoint=str(tmp_path / "out.safetensors"), strides=(8, 16, 32), **kwargs)
    assert sorted(backbone.load_report.unused) == ["outnorm0.bias", "outnorm0.weight"] and not backbone.load_report.missing
    with pytest.raises(ValueError, match="checkpoint:.*'ema'"):
        det.export_backbone(tmp_path / "last.pth", tmp_path / "ema", ema=True)
    with pytest.raises(ValueError, match="model_name:.*simba_s"):
        det.export_backbone(tmp_path / "last.pth", tmp_path / "x", model_name="simba_s")


def test_export_tool_vim_training_checkpoint(tmp_path, capsys):
    import runpy  # tools/ are scripts, not a package: run the file's definitions
    from types import SimpleNamespace

    export = SimpleNamespace(**runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "tools", "export.py")))

    name, kwargs = VIM
    full = _training_checkpoint(tmp_path / "best.pth", name, kwargs, img_size=64)
    assert export.main([str(tmp_path / "best.pth"), "--output", str(tmp_path / "vim")]) == 0
    printed = capsys.readouterr().out
    assert "loaded: " in printed and "vim.safetensors" in printed
    loaded = det.load_backbone(tmp_path / "vim.safetensors")
    # the run's img_size comes along, so the position embedding is the trained one, not a resampled copy
    assert loaded.model_kwargs["img_size"] == 64 and loaded.model_kwargs["dynamic_img_size"]
    assert torch.equal(loaded.model.pos_embed, full.pos_embed)
    torch.save(full.state_dict(), tmp_path / "weights.pth")  # bare weights do not say which model they are
    with pytest.raises(ValueError, match="model_name"):
        export.main([str(tmp_path / "weights.pth"), "--output", str(tmp_path / "y")])


class _HistoryBuffer:
    """Stands for a trainer's logging object pickled into a checkpoint (mmengine's message hub)."""

    def __init__(self):
        self.values = np.arange(3.0)


class _RunsCode:
    """A pickled object whose unpickling would call `function(*args)`."""

    def __init__(self, function, *args):
        self.call = (function, args)

    def __reduce__(self):
        return self.call


def test_mmdet_checkpoint_loads_backbone_with_report(tmp_path):
    name, kwargs = VMAMBA
    torch.manual_seed(0)
    source = _perturb(det.FeatureBackbone(name, **kwargs))
    state = {f"backbone.{k}": v for k, v in source.model.state_dict().items()}
    state.update({
        "neck.lateral_convs.0.conv.weight": torch.randn(8, 16, 1, 1),
        "rpn_head.rpn_conv.weight": torch.randn(8, 8, 3, 3),
        "roi_head.bbox_head.fc_cls.weight": torch.randn(81, 64),
    })
    marker = tmp_path / "code_ran"
    (tmp_path / "src").write_text("x")
    hook = _RunsCode(shutil.copyfile, str(tmp_path / "src"), str(marker))
    meta = {"message_hub": _HistoryBuffer(), "seed": np.int64(0), "hook": hook}
    torch.save({"meta": meta, "state_dict": state}, tmp_path / "mask_rcnn_vssm.pth")
    backbone = det.backbone_with_fpn(name, checkpoint=str(tmp_path / "mask_rcnn_vssm.pth"), fpn_channels=16, **kwargs)
    assert not marker.exists(), "a pickled call ran while reading the checkpoint"
    report = backbone.load_report
    assert report.prefix == "backbone." and report.kind == "weights"
    assert sorted(report.loaded) == sorted(source.model.state_dict()) and not report.missing
    assert sorted(report.outside) == sorted(k for k in state if not k.startswith("backbone."))
    text = str(report)
    assert "outside the backbone: 3" in text and "neck.lateral_convs.*" in text and "'backbone.'" in text
    _assert_same(_features(source), _features(backbone.body))

    # names torch never unpickles, not even as placeholders: the file is refused, nothing runs
    torch.save({"meta": _RunsCode(os.makedirs, str(marker)), "state_dict": state}, tmp_path / "os.pth")
    with pytest.raises(ValueError, match="checkpoint:.*os.makedirs"):
        det.backbone_with_fpn(name, checkpoint=str(tmp_path / "os.pth"), **kwargs)
    assert not marker.exists()


@pytest.mark.parametrize("prefix", ["backbone.net.", "backbone.bottom_up.net."])
def test_detectron2_vim_checkpoint_resamples_position_embedding(prefix):
    name, kwargs = VIM
    torch.manual_seed(0)
    trained = _perturb(timm.create_model(name, num_classes=0, img_size=64, **kwargs))  # 4x4 grid, as at 1024 / 16
    state = {prefix + k: v for k, v in trained.state_dict().items()}
    state["backbone.simfp_2.0.weight"] = torch.randn(32, 16, 2, 2)
    state["proposal_generator.rpn_head.conv.weight"] = torch.randn(32, 32, 3, 3)
    backbone = det.FeatureBackbone(name, **kwargs)  # img_size 224: a 14x14 grid
    report = det.load_backbone_weights(backbone, {"model": state, "iteration": 100})
    assert report.prefix == prefix and len(report.outside) == 2
    assert report.adapted == ["pos_embed: (1, 17, 32) -> (1, 197, 32)"]
    own = backbone.model.state_dict()
    assert all(torch.equal(own[k], trained.state_dict()[k]) for k in report.loaded if k != "pos_embed")
    assert not report.missing and not report.mismatched


def test_classification_checkpoint_report_names_new_and_unused_keys():
    name, kwargs = SIMBA
    torch.manual_seed(0)
    full = _perturb(timm.create_model(name, num_classes=7, **kwargs))
    backbone = det.FeatureBackbone(name, out_indices=(0, 1, 2), **kwargs)
    report = det.load_backbone_weights(backbone, {"model": full.state_dict()})
    unused_roots = {k.split(".")[0] for k in report.unused}
    # stage 4, class block, final norm and both heads are not part of a three-stage backbone
    assert {"class_block", "head", "aux_head", "norm"} <= unused_roots and "stages" in unused_roots
    assert not report.unused_foreign and not report.missing and not report.mismatched


# -------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "family, out_indices",
    [("vmamba", (0, 4)), ("vmamba", (2, 1)), ("vmamba", 3), ("simba", ()), ("vim", (0, 1)), ("vim", 5)],
)
def test_bad_out_indices_name_the_argument(family, out_indices):
    name, kwargs = FAMILIES[family]
    with pytest.raises(ValueError, match="out_indices"):
        det.backbone_with_fpn(name, out_indices=out_indices, **kwargs)


def test_argument_errors_name_the_argument():
    name, kwargs = VMAMBA
    with pytest.raises(ValueError, match=r"name: 'vmamba_tiny_s1l9' is not a registered model; did you mean"):
        det.backbone_with_fpn("vmamba_tiny_s1l9", **kwargs)
    with pytest.raises(ValueError, match="model_kwargs"):
        det.backbone_with_fpn(name, no_such_argument=1, **kwargs)
    with pytest.raises(ValueError, match="trainable_layers"):
        det.backbone_with_fpn(name, trainable_layers=6, **kwargs)
    with pytest.raises(ValueError, match="strides"):
        det.backbone_with_fpn(name, strides=(8, 64), **kwargs)
    with pytest.raises(ValueError, match="strides"):
        det.backbone_with_fpn(VIM[0], strides=(12, 16), **VIM[1])
    with pytest.raises(ValueError, match="num_classes"):
        det.fasterrcnn(name, 1, model_kwargs=kwargs)
    with pytest.raises(ValueError, match="layer_decay"):
        det.param_groups_lrd(timm.create_model(name, **kwargs), lr=1e-3, layer_decay=1.5)


def test_checkpoint_of_another_model_is_refused():
    name, kwargs = VMAMBA
    backbone = det.FeatureBackbone(name, **kwargs)
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    simba = timm.create_model(SIMBA[0], **SIMBA[1]).state_dict()
    with pytest.raises(ValueError, match="checkpoint: no tensor of <state_dict> fits the backbone 'vmamba_tiny_s1l8'"):
        det.load_backbone_weights(backbone, simba)
    deeper = timm.create_model(name, **dict(kwargs, depths=(1, 1, 2, 1))).state_dict()
    with pytest.raises(ValueError, match=r"checkpoint:.*keys the model does not have: layers\.2\.\*"):
        det.load_backbone_weights(backbone, deeper)
    wider = timm.create_model(name, **dict(kwargs, embed_dim=24)).state_dict()
    with pytest.raises(ValueError, match="checkpoint:.*shape mismatches"):
        det.load_backbone_weights(backbone, wider)
    trained_as = {"format": det.TRAINING_FORMAT, "model_name": "vmamba_small_s1l20", "model": deeper}
    with pytest.raises(ValueError, match="checkpoint:.*'vmamba_small_s1l20'.*'vmamba_tiny_s1l8'"):
        det.load_backbone_weights(backbone, trained_as)
    after = backbone.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a refused checkpoint changed weights"
    # strict=False loads what fits and says what did not
    report = det.load_backbone_weights(backbone, deeper, strict=False)
    assert report.unused_foreign and report.loaded


# ---------------------------------------------------------------------------------------- fine-tuning


def test_trainable_layers_and_layer_decay_groups():
    name, kwargs = VMAMBA
    model = det.fasterrcnn(name, 3, fpn_channels=16, trainable_layers=3, model_kwargs=kwargs)
    body = model.backbone.body.model
    layers = det.backbone_layers(body)
    assert len(layers) == 5  # stem and four stages
    params = dict(body.named_parameters())
    assert all(not params[n].requires_grad for group in layers[:2] for n in group)
    assert all(params[n].requires_grad for group in layers[2:] for n in group)

    groups = det.param_groups_lrd(model, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) and set(seen) == {id(p) for p in model.parameters() if p.requires_grad}
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert lr_of[id(model.backbone.fpn.inner_blocks[0][0].weight)] == 1e-3
    assert wd_of[id(model.backbone.fpn.inner_blocks[0][0].weight)] == 0.05
    deep, shallow = params["layers.3.blocks.0.op.in_proj.weight"], params["layers.2.blocks.0.op.in_proj.weight"]
    assert lr_of[id(shallow)] == pytest.approx(0.5 * lr_of[id(deep)]) and lr_of[id(deep)] < 1e-3
    assert wd_of[id(params["layers.2.blocks.0.op.A_logs"])] == 0.0  # the model's no_weight_decay set
    assert wd_of[id(shallow)] == 0.05
    torch.optim.AdamW(groups).step()  # a torch optimizer takes the groups as they are

    vim = timm.create_model(VIM[0], **VIM[1])
    groups = det.param_groups_lrd(vim, lr=1.0, layer_decay=0.7)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert wd_of[id(vim.pos_embed)] == 0.0 and lr_of[id(vim.pos_embed)] == pytest.approx(0.7**3)
    assert lr_of[id(vim.layers[0].mixer.in_proj.weight)] == pytest.approx(0.7**2)
