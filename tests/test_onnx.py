"""ONNX export of every family (`vssm.onnx`): onnxruntime against PyTorch at 224 and a second size, the scan as one
``Scan`` node per mixer (the graph does not grow with the number of tokens), the file about the size of the weights;
and the two op translations alone against their eager ops."""

from __future__ import annotations

import os

import numpy as np
import pytest
import timm
import torch

import vssm  # noqa: F401  (registers the families)
from vssm.kernels import selective_scan
from vssm.kernels.selective_scan.cases import make_inputs, rel_error
from vssm.mamba import Mamba
from vssm.models.mambavision import MambaVisionMixer
from vssm.ss2d import SS2D

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
vssm_onnx = pytest.importorskip("vssm.onnx")

# name -> (create_model kwargs, second input size)
FAMILIES = {
    "vim_tiny_patch16_224": (dict(depth=2, embed_dim=32, dynamic_img_size=True), 160),
    "vmamba_tiny_s1l8": (dict(depths=(1, 1, 1, 1), embed_dim=16), 128),
    "simba_s": (dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), stem_hidden_dim=8, d_state=8), 128),
    "mambavision_t": (dict(depths=(1, 1, 2, 2), embed_dim=16, stem_dim=8, window_size=(8, 8, 2, 1)), 128),
}
MIXERS = (Mamba, SS2D, MambaVisionMixer)  # one selective_scan call each


def _run(path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def _ops(path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_onnx_matches_torch(name, tmp_path):
    kwargs, second = FAMILIES[name]
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    scans = sum(isinstance(m, MIXERS) for m in model.modules())
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    ops = {}
    for size in (224, second):
        path = vssm_onnx.export_onnx(model, tmp_path / f"{size}.onnx", img_size=size)
        ops[size] = _ops(path)
        # the scan is one Scan node per call, and nothing of it is unrolled: the file holds the weights and
        # a graph of a fixed size (plus the visiting-order tables, (K L,) int32 each)
        assert ops[size].count("Scan") == scans
        assert os.path.getsize(path) < 1.25 * weights, (os.path.getsize(path), weights)
        x = torch.randn(3, 3, size, size)  # the batch is dynamic: exported with 2
        with torch.no_grad():
            expected = model(x)
        assert rel_error(_run(path, x), expected) < 1e-4
    # the graph has the same nodes whatever the number of tokens (up to the padding of window stages)
    assert abs(len(ops[224]) - len(ops[second])) <= 0.02 * len(ops[224]), (len(ops[224]), len(ops[second]))


def _export(module, args, path):
    program = torch.onnx.export(module, args, dynamo=True, opset_version=vssm_onnx.OPSET, verbose=False,
                                custom_translation_table=vssm_onnx.translation_table())
    program.save(str(path))
    return path


def _run_all(path, args) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    given = [t.contiguous().numpy() for t in args if t is not None]  # None inputs are not graph inputs
    return session.run(None, {i.name: t for i, t in zip(session.get_inputs(), given, strict=True)})


# (make_inputs arguments, selective_scan options): one export holds all of them (an export costs seconds)
SCAN_CASES = {
    "single": (dict(G=1, K=None), dict(delta_softplus=True)),
    "groups-no-extras": (dict(G=2, K=None, z=False, D=False, delta_bias=False), dict(delta_softplus=False)),
    "vim-like": (dict(G=1, K=2, shared=("z",)),
                 dict(delta_softplus=True, orders=["natural", "reverse"], combine="mean")),
    "grid-orders-groups": (dict(G=2, K=4, L=12, shared=("u",)),
                           dict(delta_softplus=True, grid=(3, 4), orders=["rows", "cols_reverse", "snake_rows", "cols"])),
}


class _Scans(torch.nn.Module):
    """Each case's selective_scan on its eight arguments (u, delta, A, B, C, D, z, delta_bias), one after another."""

    def __init__(self, options: list[dict]):
        super().__init__()
        self.options = options

    def forward(self, *args):
        return tuple(selective_scan(*args[8 * i:8 * i + 8], **o) for i, o in enumerate(self.options))


def test_scan_translation_matches_op(tmp_path):
    args, options = [], []
    for build, option in SCAN_CASES.values():
        build = dict(build)
        inputs = make_inputs(2, 8, build.pop("L", 20), 4, **build)
        args += [inputs[n] for n in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
        options.append(option)
    module = _Scans(options).eval()
    path = _export(module, tuple(args), tmp_path / "scan.onnx")
    assert _ops(path).count("Scan") == len(SCAN_CASES)
    for case, got, expected in zip(SCAN_CASES, _run_all(path, args), module(*args), strict=True):
        assert rel_error(torch.from_numpy(got), expected) < 1e-5, case


class _Convs(torch.nn.Module):
    """``vssm::dwconv1d_fwd`` with a single causal tap set and SiLU, and with three tap sets (causal, reversed,
    centred) without: the op itself, which the models call only on CUDA tensors."""

    def forward(self, x, weight1, bias1, weight3, bias3):
        return (torch.ops.vssm.dwconv1d_fwd(x, weight1, bias1, [-3], True, False),
                torch.ops.vssm.dwconv1d_fwd(x, weight3, bias3, [-3, 0, -1], False, False))


def test_conv_translation_matches_op(tmp_path):
    torch.manual_seed(0)
    args = (torch.randn(2, 10, 6), torch.randn(1, 6, 4), torch.randn(1, 6), torch.randn(3, 6, 4), torch.randn(3, 6))
    module = _Convs().eval()
    path = _export(module, args, tmp_path / "conv.onnx")
    assert _ops(path).count("Conv") == 4
    for got, expected in zip(_run_all(path, args), module(*args), strict=True):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)


class _Norms(torch.nn.Module):
    """``vssm::layernorm_fwd`` with weight and bias, and without either: the op itself, which the models call
    only on CUDA tensors (the fused LayerNorm)."""

    def forward(self, x, weight, bias):
        return (*torch.ops.vssm.layernorm_fwd(x, weight, bias, 1e-5, torch.float32),
                *torch.ops.vssm.layernorm_fwd(x, None, None, 1e-3, torch.float32))


def test_layer_norm_translation_matches_op(tmp_path):
    torch.manual_seed(0)
    args = (torch.randn(7, 12) * 2 + 1, torch.randn(12), torch.randn(12))
    module = _Norms().eval()
    path = _export(module, args, tmp_path / "norm.onnx")
    assert _ops(path).count("LayerNormalization") == 2
    for got, expected in zip(_run_all(path, args), module(*args), strict=True):
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_export_tool_writes_backbone_onnx(tmp_path, capsys):
    import runpy  # tools/ are scripts, not a package: run the file's definitions

    from vssm.detection import load_backbone

    main = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "tools", "export.py"))["main"]
    torch.manual_seed(0)
    torch.save(timm.create_model("vmamba_tiny_s1l8", **FAMILIES["vmamba_tiny_s1l8"][0]).state_dict(), tmp_path / "w.pth")
    argv = [str(tmp_path / "w.pth"), "--model", "vmamba_tiny_s1l8", "--model-kwargs", "depths=[1, 1, 1, 1]",
            "embed_dim=16", "--output", str(tmp_path / "vm"), "--onnx", "--onnx-size", "64"]
    assert main(argv) == 0
    assert "vm.onnx" in capsys.readouterr().out
    backbone = load_backbone(tmp_path / "vm.safetensors").eval()
    x = torch.randn(2, 3, 64, 64)
    session = ort.InferenceSession(str(tmp_path / "vm.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = backbone(x)
    assert len(got) == len(expected) == 4
    for g, e in zip(got, expected):
        assert rel_error(torch.from_numpy(g), e) < 1e-4
