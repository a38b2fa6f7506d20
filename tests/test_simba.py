"""SiMBA models (models/simba.py) and the EinFFT channel mixer (vssm/einfft.py), on CPU.

Inputs stay small (32-64 px, batch 1-2): the reference scan with d_state 64 dominates the runtime.
"""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models import group_parameters

import vssm  # noqa: F401  (registers the models)
from vssm.einfft import EinFFT
from vssm.mamba import Mamba
from vssm.models.simba import SiMBA

NAMES = ("simba_s", "simba_b", "simba_l", "simba_s_mlp", "simba_b_mlp", "simba_l_mlp")
# Parameter counts of the paper's table (arXiv 2403.15360), in millions.
PAPER_PARAMS = {"simba_s": 15.3, "simba_b": 22.8, "simba_l": 36.6, "simba_s_mlp": 26.5, "simba_b_mlp": 40.0}
# A small configuration for checks that need many forwards (one block per stage, d_state 4).
TINY = dict(stem_hidden_dim=8, embed_dims=(16, 16, 32, 32), depths=(1, 1, 2, 1), d_state=4, num_classes=10)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def simba_s() -> SiMBA:
    torch.manual_seed(0)
    return timm.create_model("simba_s").eval()


# ----------------------------------------------------------------------------------------------
# registration, parameter counts, configs


@pytest.mark.parametrize("name", NAMES)
def test_builds_with_paper_param_count_and_cfg(name):
    model = timm.create_model(name, device="meta")
    assert isinstance(model, SiMBA)
    n = _params(model) / 1e6
    if name in PAPER_PARAMS:
        assert abs(n - PAPER_PARAMS[name]) / PAPER_PARAMS[name] < 0.03, (name, n)
    cfg = model.pretrained_cfg
    for key in (
        "url",
        "input_size",
        "pool_size",
        "crop_pct",
        "interpolation",
        "mean",
        "std",
        "first_conv",
        "classifier",
    ):
        assert key in cfg, key
    first = model.get_submodule(cfg["first_conv"])
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == 3
    for head in cfg["classifier"]:
        assert model.get_submodule(head).out_features == cfg["num_classes"] == 1000
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]


def test_param_count_convention_and_bidirectional():
    """The count includes the class block, the head and the aux head; a second direction adds its branch."""
    base = timm.create_model("simba_s", device="meta")
    no_aux = timm.create_model("simba_s", device="meta", use_aux_head=False)
    assert _params(base) - _params(no_aux) == 448 * 1000 + 1000
    bi = timm.create_model("simba_s", device="meta", bidirectional=True)
    dims, depths = (64, 128, 320, 448), (3, 4, 6, 3)
    extra = 0
    # one backward branch per mixer: conv1d (E*4 + E), x_proj (E*(R + 2N)), dt_proj (R*E + E), A_log (E*N), D (E)
    for d, n in zip(dims + (448,), depths + (1,)):  # the class block has a mixer of the last width
        E, R, N = 2 * d, math.ceil(d / 16), 64
        extra += n * (5 * E + E * (R + 2 * N) + R * E + E + E * N + E)
    assert _params(bi) - _params(base) == extra
    mixers = [m for m in bi.modules() if isinstance(m, Mamba)]
    assert len(mixers) == sum(depths) + 1 and all(m.bidirectional and m.d_state == 64 for m in mixers)
    assert all(m.expand == 2 and m.d_conv == 4 for m in mixers)


def test_norms_take_the_fused_op_at_every_size():
    """SiMBA's LayerNorms are `vssm.norm.LayerNorm` with fused_min_numel=0 (its step is bound by the GPU):
    under VSSM_FUSED_LN=auto they run the fused op on CUDA whatever the size; the state_dict is nn.LayerNorm's."""
    from vssm.norm import LayerNorm

    model = SiMBA(**TINY, device="meta")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) >= 6 and all(type(m) is LayerNorm and m.fused_min_numel == 0 for m in norms)


def test_bad_arguments():
    with pytest.raises(TypeError, match="unexpected keyword"):
        timm.create_model("simba_s", device="meta", not_an_arg=1)
    with pytest.raises(ValueError, match="channel_mixer"):
        SiMBA(channel_mixer="attention", device="meta")
    with pytest.raises(ValueError, match="global_pool"):
        SiMBA(global_pool="max", device="meta")
    with pytest.raises(ValueError, match="divisible"):
        SiMBA(**{**TINY, "embed_dims": (16, 16, 32, 30)}, device="meta")
    with pytest.raises(ValueError, match="expected"):
        EinFFT(16)(torch.randn(2, 5, 12))


# ----------------------------------------------------------------------------------------------
# EinFFT


def _dft(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    ang = -2 * math.pi * torch.outer(k, k) / n
    return torch.complex(torch.cos(ang), torch.sin(ang)) / math.sqrt(n)


def _einfft_direct(x: torch.Tensor, m: EinFFT) -> torch.Tensor:
    """EinFFT written with explicit DFT matrices and complex arithmetic (no torch.fft)."""
    batch, L, C = x.shape
    nb, bs = m.num_blocks, m.block_size
    xc = x.reshape(batch, L, nb, bs).to(torch.complex128)
    FL, FB = _dft(L), _dft(nb)
    X = torch.einsum("tl,blkc->btkc", FL, xc)
    if m.fft_over_blocks:
        X = torch.einsum("jk,btkc->btjc", FB, X)
    w1 = torch.complex(m.weight1[0], m.weight1[1])
    b1 = torch.complex(m.bias1[0], m.bias1[1])
    w2 = torch.complex(m.weight2[0], m.weight2[1])
    b2 = torch.complex(m.bias2[0], m.bias2[1])
    H = torch.einsum("btkc,kcd->btkd", X, w1) + b1
    H = torch.complex(F.relu(H.real), F.relu(H.imag))
    Y = torch.einsum("btkc,kcd->btkd", H, w2) + b2
    lam = m.sparsity_threshold
    Y = torch.complex(F.softshrink(Y.real, lam), F.softshrink(Y.imag, lam))
    if m.fft_over_blocks:
        Y = torch.einsum("jk,btkc->btjc", FB.conj(), Y)
    y = torch.einsum("lt,btkc->blkc", FL.conj(), Y)
    return y.real.reshape(batch, L, C)


@pytest.mark.parametrize("fft_over_blocks", [True, False])
@pytest.mark.parametrize("L", [1, 7, 12])
def test_einfft_matches_dft_matrices(fft_over_blocks, L):
    torch.manual_seed(L)
    m = EinFFT(16, fft_over_blocks=fft_over_blocks, init_scale=0.5, dtype=torch.float64)
    x = torch.randn(2, L, 16, dtype=torch.float64)
    ref = _einfft_direct(x, m)
    out = m(x)
    assert out.shape == x.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    assert ref.abs().max() > 0.1  # the non-linearities left something to compare


def test_einfft_nonlinearities_are_active():
    """With the reference's own weights, ReLU and softshrink must change the result (the test above bites)."""
    torch.manual_seed(0)
    m = EinFFT(16, init_scale=0.5, dtype=torch.float64)
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    out = m(x)
    lin = EinFFT(16, sparsity_threshold=0.0, dtype=torch.float64)
    lin.load_state_dict(m.state_dict())
    assert (out - lin(x)).abs().max() > 1e-3  # softshrink(0.01) matters at this scale
    # mixing: output token 0 depends on input token 5 (global FFT), and the batch rows stay independent
    x2 = x.clone()
    x2[0, 5] += 1.0
    d = (m(x2) - out).abs()
    assert d[0, 0].max() > 0 and d[1].max() == 0


def test_einfft_gradients_and_bf16_autocast():
    torch.manual_seed(0)
    m = EinFFT(32, init_scale=0.2)
    x = torch.randn(2, 13, 32, requires_grad=True)
    m(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    torch.testing.assert_close(y, m(x), rtol=0.05, atol=0.02)
    yb = m.to(torch.bfloat16)(x.detach().to(torch.bfloat16))  # bf16 weights, no autocast: FFT still fp32
    assert yb.dtype == torch.bfloat16 and torch.isfinite(yb).all()


@pytest.mark.filterwarnings("ignore:Torchinductor does not support code generation for complex")
def test_einfft_compile_fullgraph_inductor():
    torch.manual_seed(0)
    m = EinFFT(32, init_scale=0.2)
    x = torch.randn(2, 15, 32)
    compiled = torch.compile(m, fullgraph=True)
    torch.testing.assert_close(compiled(x), m(x), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# the model


def test_simba_s_forward_backward(simba_s):
    model = simba_s.train()
    model.zero_grad()
    x = torch.randn(1, 3, 48, 40)  # stage maps 12x10, 6x5, 3x3, 2x2
    out = model(x)
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    out.square().mean().backward()
    # The class block's mixer sees one token, so its state decay multiplies h_{-1} = 0: A_log has no effect
    # and gets an exact zero gradient. Every other parameter must get a non-zero one.
    exempt = {"class_block.mixer.A_log"}
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or (n not in exempt and not p.grad.any())
    ]
    assert not missing
    assert not model.class_block.mixer.A_log.grad.any()
    model.zero_grad()
    model.eval()


def test_outputs_shapes_nonsquare_and_batch_independence(simba_s):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 36, 40)  # stage maps 9x10, 5x5 (25 tokens), 3x3, 2x2: no size rule
    with torch.no_grad():
        feats = simba_s.forward_features(x)
        assert feats.shape == (2, 1 + 2 * 2, 448)
        logits = simba_s.forward_head(feats)
        one = simba_s(x[1:])
    torch.testing.assert_close(logits[1:], one, rtol=1e-4, atol=1e-4)


def test_forward_intermediates_and_features_only(simba_s):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 33, 47)  # neither square nor a multiple of 32
    with torch.no_grad():
        final, inter = simba_s.forward_intermediates(x)
        torch.testing.assert_close(final, simba_s.forward_features(x))
        expected = [(64, 9, 12), (128, 5, 6), (320, 3, 3), (448, 2, 2)]
        assert [tuple(t.shape[1:]) for t in inter] == expected
        last2 = simba_s.forward_intermediates(
            x, indices=2, norm=True, output_fmt="NHWC", intermediates_only=True
        )
        assert [tuple(t.shape[1:]) for t in last2] == [(3, 3, 320), (2, 2, 448)]
        torch.testing.assert_close(last2[0].permute(0, 3, 1, 2), inter[2])  # stage 3 ends with its own norm
        torch.testing.assert_close(last2[1], simba_s.norm(inter[3].permute(0, 2, 3, 1)))
        early = simba_s.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        torch.testing.assert_close(early[0], inter[1])

    torch.manual_seed(0)
    fmodel = timm.create_model("simba_s", features_only=True).eval()
    fmodel.model.load_state_dict(simba_s.state_dict(), strict=False)  # the stages' weights
    assert fmodel.feature_info.reduction() == [4, 8, 16, 32]
    assert fmodel.feature_info.channels() == [64, 128, 320, 448]
    assert not any(k.startswith(("class_block", "head", "aux_head")) for k in fmodel.model.state_dict())
    with torch.no_grad():
        outs = fmodel(x)
    assert len(outs) == 4
    for o, ref in zip(outs, inter):
        torch.testing.assert_close(o, ref)


def test_prune_reset_and_api(simba_s):
    model = timm.create_model("simba_s", **{k: v for k, v in TINY.items() if k != "num_classes"}).eval()
    x = torch.randn(1, 3, 32, 32)
    assert model.get_classifier() is model.head
    with torch.no_grad():  # released inference output: class-token logits + 0.5 * max over patch-token logits
        feats = model.forward_features(x)
        expected = model.head(feats[:, 0]) + 0.5 * model.aux_head(feats[:, 1:]).max(dim=1).values
        torch.testing.assert_close(model(x), expected)
        assert not torch.allclose(model(x), model.head(feats[:, 0]))
    model.reset_classifier(5)
    assert model.head.out_features == 5 and model.aux_head.out_features == 5 and model(x).shape == (1, 5)
    model.reset_classifier(0, "avg")
    assert model.aux_head is None and model(x).shape == (1, 32)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(0, "max")
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (1, 32)

    kept = model.prune_intermediate_layers([1])
    assert kept == [1] and len(model.stages) == 2 and model.class_block is None
    assert model.forward_features(x).shape == (1, 16, 16)  # 4x4 stride-8 tokens, no class token
    with pytest.raises(ValueError, match="class block"):
        model.reset_classifier(3, "token")

    # optimizer hooks on the full model
    names = {n for n, _ in simba_s.named_parameters()}
    nwd = simba_s.no_weight_decay()
    assert "stages.0.blocks.0.mixer.A_log" in nwd and "class_block.mixer.D" in nwd and nwd <= names
    groups = group_parameters(simba_s, simba_s.group_matcher())
    assert sorted(n for g in groups.values() for n in g) == sorted(names)
    coarse = group_parameters(simba_s, simba_s.group_matcher(coarse=True))
    assert sorted(n for g in coarse.values() for n in g) == sorted(names)


def test_grad_checkpointing_and_dtype():
    torch.manual_seed(0)
    model = SiMBA(**TINY).train()  # train mode: BN uses batch statistics, so repeated forwards agree
    x = torch.randn(2, 3, 32, 48)
    ref = model(x)
    ref.square().sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    assert all(s.grad_checkpointing for s in model.stages)
    out = model(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, ref)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=1e-6, msg=n)
    m64 = SiMBA(**TINY, dtype=torch.float64)
    assert m64.head.weight.dtype == torch.float64
    assert m64(x.double()).dtype == torch.float64


def test_channels_last_stem_gives_the_nchw_results():
    """The stem's maps stored channels_last, as CUDA runs them (`Stem.channels_last`), against NCHW maps: outputs
    and every gradient in float64; the tokens leave the stem dense either way."""
    torch.manual_seed(0)
    model = SiMBA(**TINY, dtype=torch.float64).train()
    x = torch.randn(2, 3, 32, 48, dtype=torch.float64)
    outs, grads = [], []
    for layout in (torch.contiguous_format, torch.channels_last):
        model.zero_grad()
        xi = x.contiguous(memory_format=layout).detach().requires_grad_(True)
        tokens = model.stem(xi)
        assert tokens.is_contiguous()
        out = model(xi)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outs.append(out)
        grads.append({"input": xi.grad.clone(), **{n: p.grad.clone() for n, p in model.named_parameters()}})
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-12)
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-9, atol=1e-12, msg=n)


@pytest.mark.parametrize("in_chans", [3, 1])
def test_stem_maps_take_the_device_layout(monkeypatch, in_chans):
    """On a device of `vssm.memory_format.CHANNELS_LAST_DEVICES` (CUDA; the CPU added here) the stem's convs see
    channels_last maps (a 1-channel input's from the first conv's output on); `Stem.channels_last = False` keeps
    NCHW; same tokens either way."""
    from vssm import memory_format

    torch.manual_seed(0)
    model = SiMBA(**{**TINY, "in_chans": in_chans}, dtype=torch.float64).eval()
    seen = []
    for conv in (model.stem.conv[3], model.stem.proj):  # the second conv, and proj
        conv.register_forward_pre_hook(lambda mod, args: seen.append(args[0].is_contiguous()))
    x = torch.randn(2, in_chans, 32, 48, dtype=torch.float64)
    with torch.no_grad():
        ref = model.stem(x)
        assert seen == [True, True]
        monkeypatch.setattr(memory_format, "CHANNELS_LAST_DEVICES", frozenset({"cpu", "cuda"}))
        seen.clear()
        out = model.stem(x)
        assert seen == [False, False] and out.is_contiguous()
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
        model.stem.channels_last = False
        seen.clear()
        model.stem(x)
        assert seen == [True, True]


def test_bf16_autocast_forward_finite():
    torch.manual_seed(0)
    model = SiMBA(**TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert torch.isfinite(out).all()
    with torch.no_grad():
        ref = model(x)
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


@pytest.mark.parametrize("channel_mixer", ["einfft", "mlp"])
def test_compile_fullgraph_equals_eager(channel_mixer):
    """The whole model traces as one graph (aot_eager keeps CPU codegen out of the test time);
    inductor on EinFFT itself is tested above."""
    torch.manual_seed(0)
    model = SiMBA(**{**TINY, "depths": (1, 1, 1, 1)}, channel_mixer=channel_mixer).eval()
    x = torch.randn(1, 3, 32, 48)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


def test_bidirectional_forward():
    torch.manual_seed(0)
    model = SiMBA(**TINY, bidirectional=True).eval()
    assert all(m.bidirectional for m in model.modules() if isinstance(m, Mamba))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 10) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------------------------
# checkpoints in the released code's layout


def _released_state_dict(stem, dims, depths, ratios, mixer, num_classes, d_state, gen):
    """Names and shapes of badripatro/simba `SiMBA` (token_label=True) state_dicts, written out by hand."""
    sd = {}

    def add(name, *shape):
        sd[name] = torch.randn(*shape, generator=gen)

    def bn(p, c):
        add(f"{p}.weight", c), add(f"{p}.bias", c), add(f"{p}.running_mean", c)
        sd[f"{p}.running_var"] = torch.rand(c, generator=gen) + 0.5
        sd[f"{p}.num_batches_tracked"] = torch.tensor(7)

    def ln(p, c):
        add(f"{p}.weight", c), add(f"{p}.bias", c)

    def mamba(p, d):
        E, R = 2 * d, math.ceil(d / 16)
        add(f"{p}.A_log", E, d_state), add(f"{p}.D", E), add(f"{p}.in_proj.weight", 2 * E, d)
        add(f"{p}.conv1d.weight", E, 1, 4), add(f"{p}.conv1d.bias", E)
        add(f"{p}.x_proj.weight", R + 2 * d_state, E)
        add(f"{p}.dt_proj.weight", E, R), add(f"{p}.dt_proj.bias", E), add(f"{p}.out_proj.weight", d, E)

    def einfft(p, d):
        for k in (1, 2):
            add(f"{p}.complex_weight_{k}", 2, 4, d // 4, d // 4), add(f"{p}.complex_bias_{k}", 2, 4, d // 4)

    add("patch_embed1.conv.0.weight", stem, 3, 7, 7), bn("patch_embed1.conv.1", stem)
    add("patch_embed1.conv.3.weight", stem, stem, 3, 3), bn("patch_embed1.conv.4", stem)
    add("patch_embed1.conv.6.weight", stem, stem, 3, 3), bn("patch_embed1.conv.7", stem)
    add("patch_embed1.proj.weight", dims[0], stem, 3, 3), add("patch_embed1.proj.bias", dims[0])
    ln("patch_embed1.norm", dims[0])
    for i, (d, n, r) in enumerate(zip(dims, depths, ratios)):
        if i:
            (
                add(f"patch_embed{i + 1}.proj.weight", d, dims[i - 1], 3, 3),
                add(f"patch_embed{i + 1}.proj.bias", d),
            )
            ln(f"patch_embed{i + 1}.norm", d)
        for j in range(n):
            p = f"block{i + 1}.{j}"
            ln(f"{p}.norm2", d), ln(f"{p}.attn.norm", d), mamba(f"{p}.attn.mamba", d)
            if mixer == "mlp":
                h = d * r
                add(f"{p}.mlp.fc1.weight", h, d), add(f"{p}.mlp.fc1.bias", h)
                add(f"{p}.mlp.dwconv.dwconv.weight", h, 1, 3, 3), add(f"{p}.mlp.dwconv.dwconv.bias", h)
                add(f"{p}.mlp.fc2.weight", d, h), add(f"{p}.mlp.fc2.bias", d)
            else:
                einfft(f"{p}.mlp", d)
        ln(f"norm{i + 1}", d)
    d, h = dims[-1], dims[-1] * ratios[-1]
    ln("post_network.0.norm2", d), ln("post_network.0.attn.norm", d), mamba("post_network.0.attn.mamba", d)
    if mixer == "mlp":
        add("post_network.0.mlp.fc1.weight", h, d), add("post_network.0.mlp.fc1.bias", h)
        add("post_network.0.mlp.fc2.weight", d, h), add("post_network.0.mlp.fc2.bias", d)
    else:
        einfft("post_network.0.mlp", d)
    for head in ("head", "aux_head"):
        add(f"{head}.weight", num_classes, d), add(f"{head}.bias", num_classes)
    return sd


@pytest.mark.parametrize("name,mixer", [("simba_s_mlp", "mlp"), ("simba_s", "einfft")])
def test_loads_released_checkpoint(tmp_path, name, mixer):
    cfg = dict(stem_hidden_dim=8, embed_dims=(16, 24, 32, 40), depths=(1, 2, 1, 2), mlp_ratios=(2, 2, 3, 3))
    gen = torch.Generator().manual_seed(0)
    sd = _released_state_dict(8, cfg["embed_dims"], cfg["depths"], cfg["mlp_ratios"], mixer, 1000, 64, gen)
    path = tmp_path / "released.pth"
    torch.save({"model": sd}, path)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **cfg)
    own = model.state_dict()
    assert len(own) == len(sd)  # strict load succeeded; now check tensors went to the right places
    pairs = {
        "stem.conv.0.weight": "patch_embed1.conv.0.weight",
        "stem.conv.7.running_var": "patch_embed1.conv.7.running_var",
        "stem.norm.bias": "patch_embed1.norm.bias",
        "stages.2.downsample.proj.weight": "patch_embed3.proj.weight",
        "stages.3.downsample.norm.weight": "patch_embed4.norm.weight",
        "stages.1.blocks.1.norm1.weight": "block2.1.attn.norm.weight",
        "stages.1.blocks.1.norm2.weight": "block2.1.norm2.weight",
        "stages.1.blocks.1.mixer.A_log": "block2.1.attn.mamba.A_log",
        "stages.3.blocks.1.mixer.dt_proj.bias": "block4.1.attn.mamba.dt_proj.bias",
        "stages.0.norm.weight": "norm1.weight",
        "stages.2.norm.bias": "norm3.bias",
        "norm.weight": "norm4.weight",
        "class_block.norm1.weight": "post_network.0.attn.norm.weight",
        "class_block.norm2.bias": "post_network.0.norm2.bias",
        "class_block.mixer.in_proj.weight": "post_network.0.attn.mamba.in_proj.weight",
        "head.weight": "head.weight",
        "aux_head.bias": "aux_head.bias",
    }
    if mixer == "mlp":
        pairs["stages.0.blocks.0.mlp.dwconv.weight"] = "block1.0.mlp.dwconv.dwconv.weight"
        pairs["stages.2.blocks.0.mlp.fc2.bias"] = "block3.0.mlp.fc2.bias"
        pairs["class_block.mlp.fc1.weight"] = "post_network.0.mlp.fc1.weight"
    else:
        pairs["stages.0.blocks.0.mlp.weight1"] = "block1.0.mlp.complex_weight_1"
        pairs["stages.3.blocks.1.mlp.bias2"] = "block4.1.mlp.complex_bias_2"
        pairs["class_block.mlp.weight2"] = "post_network.0.mlp.complex_weight_2"
    for ours, theirs in pairs.items():
        assert torch.equal(own[ours], sd[theirs]), (ours, theirs)

    # without the aux head the filter drops its weights; another class count drops both heads
    no_aux = timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), use_aux_head=False, **cfg
    )
    assert no_aux.aux_head is None and torch.equal(no_aux.head.weight, sd["head.weight"])
    other = timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), num_classes=7, **cfg
    )
    assert torch.equal(other.stem.conv[0].weight, sd["patch_embed1.conv.0.weight"])
    assert other.head.weight.shape == (7, 40)


def test_input_layout_error_names_the_expected_shape():
    model = timm.create_model("simba_s", num_classes=3)
    with pytest.raises(ValueError, match=r"SiMBA: input must be \(batch, 3, H, W\), got \(1, 64, 64, 3\)"):
        model(torch.randn(1, 64, 64, 3))
