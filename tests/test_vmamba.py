"""VMamba (models/vmamba.py, vssm/ss2d.py): official architecture, keys, checkpoints and the timm API.

Expected numbers come from the official code (MzeroMiko/VMamba) and the paper's table, never from ours:
parameter counts were read off the official ``VSSM`` builders, state_dict names and shapes are written
out below from the official module layout.
"""

import math

import pytest
import timm
import torch
import torch.nn as nn

import vssm  # noqa: F401  (registers the models)
from vssm.kernels.selective_scan import selective_scan_naive
from vssm.ss2d import SS2D, cross_merge_2d, cross_scan_2d, cross_selective_scan_2d

# name -> (official parameter count from the official builder, table params (M), table GFLOPs at 224)
OFFICIAL = {
    "vmamba_tiny_s1l8": (30249064, 30, 4.9),
    "vmamba_small_s1l20": (49012840, 49, 8.6),
    "vmamba_base_s1l20": (86614504, 87, 15.2),
    "vmamba_tiny_s2l5": (30705832, 31, 4.9),
    "vmamba_small_s2l15": (50147752, 50, 8.7),
    "vmamba_base_s2l15": (88557800, 89, 15.4),
    "vanilla_vmamba_tiny": (22893448, 23, 5.6),
    "vanilla_vmamba_small": (44417416, 44, 11.2),
    "vanilla_vmamba_base": (76254056, 76, 18.0),
}
# name -> (depths, embed_dim, ssm_ratio, d_state, z gate, MLP) from the official configs
CONFIGS = {
    "vmamba_tiny_s1l8": ((2, 2, 8, 2), 96, 1.0, 1, False, True),
    "vmamba_small_s1l20": ((2, 2, 20, 2), 96, 1.0, 1, False, True),
    "vmamba_base_s1l20": ((2, 2, 20, 2), 128, 1.0, 1, False, True),
    "vmamba_tiny_s2l5": ((2, 2, 5, 2), 96, 2.0, 1, False, True),
    "vmamba_small_s2l15": ((2, 2, 15, 2), 96, 2.0, 1, False, True),
    "vmamba_base_s2l15": ((2, 2, 15, 2), 128, 2.0, 1, False, True),
    "vanilla_vmamba_tiny": ((2, 2, 9, 2), 96, 2.0, 16, True, False),
    "vanilla_vmamba_small": ((2, 2, 27, 2), 96, 2.0, 16, True, False),
    "vanilla_vmamba_base": ((2, 2, 27, 2), 128, 2.0, 16, True, False),
}


def _perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Move every parameter off its init so that tests see them all (and norms are not identities)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _tiny(**kwargs) -> nn.Module:
    """vmamba_tiny_s1l8 without stochastic depth, so outputs are deterministic in train mode."""
    torch.manual_seed(0)
    return _perturb(timm.create_model("vmamba_tiny_s1l8", drop_path_rate=0.0, **kwargs))


# ------------------------------------------------------------------------------------------- SS2D


def test_cross_scan_visits_the_four_official_orders():
    h, w = 2, 3
    x = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    xs = cross_scan_2d(x)[0, :, 0]
    row_major = [0, 1, 2, 3, 4, 5]
    col_major = [0, 3, 1, 4, 2, 5]
    assert xs.tolist() == [row_major, col_major, row_major[::-1], col_major[::-1]]
    y = cross_merge_2d(cross_scan_2d(x.expand(2, 3, h, w)), h, w)
    torch.testing.assert_close(y, 4 * x.expand(2, 3, h, w))


def test_cross_selective_scan_matches_per_direction_loop():
    """The stacked-direction composition against four separate step-by-step scans over explicit orders."""
    torch.manual_seed(0)
    b, d, h, w, n, r, k = 2, 6, 3, 4, 3, 2, 4
    x = torch.randn(b, d, h, w)
    x_proj = torch.randn(k, r + 2 * n, d) * 0.3
    dt_w = torch.randn(k, d, r) * 0.3
    dt_b = torch.randn(k, d) * 0.3
    A_logs = torch.randn(k * d, n) * 0.3
    Ds = torch.randn(k * d)
    y = cross_selective_scan_2d(x, x_proj, dt_w, dt_b, A_logs, Ds)

    idx = torch.arange(h * w).view(h, w)
    orders = [idx.flatten(), idx.t().flatten(), idx.flatten().flip(0), idx.t().flatten().flip(0)]
    expected = torch.zeros(b, d, h * w)
    flat = x.flatten(2)
    for i, order in enumerate(orders):
        u = flat[:, :, order]
        dt, B, C = torch.split(torch.einsum("cd,bdl->bcl", x_proj[i], u), [r, n, n], dim=1)
        delta = torch.einsum("dr,brl->bdl", dt_w[i], dt)
        rows = slice(i * d, (i + 1) * d)
        yi = selective_scan_naive(
            u, delta, -torch.exp(A_logs[rows]), B, C, Ds[rows], delta_bias=dt_b[i], delta_softplus=True
        )
        expected[:, :, order] += yi  # scatter back to natural order
    torch.testing.assert_close(y, expected.view(b, d, h, w), rtol=1e-4, atol=1e-5)


def test_ss2d_rejects_bad_arguments():
    with pytest.raises(ValueError, match="d_state"):
        SS2D(8, d_state=0)
    with pytest.raises(ValueError, match="d_conv"):
        SS2D(8, d_conv=4)
    with pytest.raises(ValueError, match="d_model=8"):
        SS2D(8)(torch.randn(1, 8, 4, 4))


# ------------------------------------------------------------------------------------ architecture


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_builds_with_official_params_and_cfg(name):
    model = timm.create_model(name, device="meta")
    exact, table_m, _ = OFFICIAL[name]
    n = sum(p.numel() for p in model.parameters())
    assert n == exact
    assert abs(n / 1e6 - table_m) / table_m < 0.02

    depths, dim, ratio, d_state, gate, mlp = CONFIGS[name]
    assert [len(s.blocks) for s in model.layers] == list(depths)
    block = model.layers[0].blocks[0]
    assert (block.op.d_model, block.op.d_inner, block.op.d_state, block.op.gate) == (
        dim,
        int(dim * ratio),
        d_state,
        gate,
    )
    assert (block.mlp is not None) == mlp
    if mlp:
        assert isinstance(block.mlp.act, nn.GELU) and block.mlp.act.approximate == "none"
    # the official norms are nn.LayerNorm / LayerNorm2d(nn.LayerNorm) with the default eps
    assert {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)} == {1e-5}
    assert model.num_features == 8 * dim

    cfg = model.pretrained_cfg
    for key in (
        "url",
        "pool_size",
        "crop_pct",
        "interpolation",
        "mean",
        "std",
        "first_conv",
        "classifier",
        "license",
    ):
        assert key in cfg, key
    assert cfg["url"].startswith("https://github.com/MzeroMiko/VMamba/releases/download/")
    assert cfg["paper_ids"] == "arXiv:2401.10166"
    assert cfg["pool_size"] == (7, 7)
    first = model.get_submodule(cfg["first_conv"])
    assert isinstance(first, nn.Conv2d) and first.in_channels == 3
    head = model.get_submodule(cfg["classifier"])
    assert head is model.get_classifier() and head.out_features == 1000


def test_device_dtype_and_unknown_kwargs():
    model = timm.create_model("vmamba_tiny_s1l8", device="meta", dtype=torch.bfloat16)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert all(p.is_meta for p in model.parameters())
    assert dtypes["layers.0.blocks.0.op.x_proj_weight"] == torch.bfloat16
    assert dtypes["layers.0.blocks.0.op.A_logs"] == torch.float32  # the scan's decay stays float32
    with pytest.raises(TypeError):
        timm.create_model("vmamba_tiny_s1l8", device="meta", not_an_argument=1)


def _v2_official_keys(depths=(2, 2, 8, 2), dim=96, ratio=1.0, d_state=1, classes=1000):
    """state_dict names and shapes of the official VSSM with patchembed v2, downsample v3, v05_noz."""
    keys = {
        "patch_embed.0.weight": (dim // 2, 3, 3, 3),
        "patch_embed.0.bias": (dim // 2,),
        "patch_embed.2.weight": (dim // 2,),
        "patch_embed.2.bias": (dim // 2,),
        "patch_embed.5.weight": (dim, dim // 2, 3, 3),
        "patch_embed.5.bias": (dim,),
        "patch_embed.7.weight": (dim,),
        "patch_embed.7.bias": (dim,),
    }
    for i, depth in enumerate(depths):
        d = dim * 2**i
        e, r, n = int(d * ratio), math.ceil(d / 16), d_state
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            keys.update(
                {
                    p + "norm.weight": (d,),
                    p + "norm.bias": (d,),
                    p + "op.x_proj_weight": (4, r + 2 * n, e),
                    p + "op.A_logs": (4 * e, n),
                    p + "op.Ds": (4 * e,),
                    p + "op.dt_projs_weight": (4, e, r),
                    p + "op.dt_projs_bias": (4, e),
                    p + "op.out_norm.weight": (e,),
                    p + "op.out_norm.bias": (e,),
                    p + "op.in_proj.weight": (e, d),
                    p + "op.conv2d.weight": (e, 1, 3, 3),
                    p + "op.out_proj.weight": (d, e),
                    p + "norm2.weight": (d,),
                    p + "norm2.bias": (d,),
                    p + "mlp.fc1.weight": (4 * d, d),
                    p + "mlp.fc1.bias": (4 * d,),
                    p + "mlp.fc2.weight": (d, 4 * d),
                    p + "mlp.fc2.bias": (d,),
                }
            )
        if i < len(depths) - 1:
            p = f"layers.{i}.downsample."
            keys.update(
                {
                    p + "1.weight": (2 * d, d, 3, 3),
                    p + "1.bias": (2 * d,),
                    p + "3.weight": (2 * d,),
                    p + "3.bias": (2 * d,),
                }
            )
    last = dim * 2 ** (len(depths) - 1)
    keys.update(
        {
            "classifier.norm.weight": (last,),
            "classifier.norm.bias": (last,),
            "classifier.head.weight": (classes, last),
            "classifier.head.bias": (classes,),
        }
    )
    return keys


def _v0_official_keys(depths=(2, 2, 9, 2), dim=96, d_state=16, classes=1000):
    """state_dict names and shapes of the official vanilla VSSM (patchembed v1, PatchMerging2D, v0)."""
    keys = {
        "patch_embed.0.weight": (dim, 3, 4, 4),
        "patch_embed.0.bias": (dim,),
        "patch_embed.2.weight": (dim,),
        "patch_embed.2.bias": (dim,),
    }
    for i, depth in enumerate(depths):
        d = dim * 2**i
        e, r, n = 2 * d, math.ceil(d / 16), d_state
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            keys.update(
                {
                    p + "norm.weight": (d,),
                    p + "norm.bias": (d,),
                    p + "op.in_proj.weight": (2 * e, d),
                    p + "op.conv2d.weight": (e, 1, 3, 3),
                    p + "op.conv2d.bias": (e,),
                    p + "op.x_proj_weight": (4, r + 2 * n, e),
                    p + "op.A_logs": (4 * e, n),
                    p + "op.Ds": (4 * e,),
                    p + "op.dt_projs_weight": (4, e, r),
                    p + "op.dt_projs_bias": (4, e),
                    p + "op.out_norm.weight": (e,),
                    p + "op.out_norm.bias": (e,),
                    p + "op.out_proj.weight": (d, e),
                }
            )
        if i < len(depths) - 1:
            p = f"layers.{i}.downsample."
            keys.update(
                {
                    p + "reduction.weight": (2 * d, 4 * d),
                    p + "norm.weight": (4 * d,),
                    p + "norm.bias": (4 * d,),
                }
            )
    last = dim * 2 ** (len(depths) - 1)
    keys.update(
        {
            "classifier.norm.weight": (last,),
            "classifier.norm.bias": (last,),
            "classifier.head.weight": (classes, last),
            "classifier.head.bias": (classes,),
        }
    )
    return keys


@pytest.mark.parametrize(
    "name, expected, count",
    [("vmamba_tiny_s1l8", _v2_official_keys, 276), ("vanilla_vmamba_tiny", _v0_official_keys, 212)],
)
def test_state_dict_names_and_shapes_are_official(name, expected, count):
    model = timm.create_model(name, device="meta")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = expected()
    assert len(want) == count  # the official state_dict's length
    assert sorted(set(got) ^ set(want)) == []
    assert got == want


def _official_flops_scan(name: str, size: int = 224) -> int:
    """The scan term of the official count: per block 9*L*D*N + L*D over the four stacked directions."""
    depths, dim, ratio, d_state, _, _ = CONFIGS[name]
    total = 0
    for i, depth in enumerate(depths):
        L = (size // (4 * 2**i)) ** 2
        D = 4 * int(dim * 2**i * ratio)
        total += depth * (9 * L * D * d_state + L * D)
    return total


def test_flops_match_the_table_at_224():
    from vssm.flops import count_flops

    name = "vmamba_tiny_s1l8"
    res = count_flops(timm.create_model(name), 224)
    table = OFFICIAL[name][2]
    assert abs(res["gflops"] - table) / table < 0.02, res["gflops"]
    assert res["by_operator"]["selective_scan_fwd"] == _official_flops_scan(name)
    assert res["unsupported"] == {}


def test_vanilla_flops_per_pixel_scale_to_the_table():
    """The v0 scan (N=16) is slow on the CPU at 224, but every op except the classifier's linear layer
    is per pixel: count at 32 and 64, check that the per-pixel part is the same, scale it to 224."""
    from vssm.flops import count_flops

    name = "vanilla_vmamba_tiny"
    model = timm.create_model(name)
    head = model.num_features * 1000  # the one per-image term: the classifier's multiply-adds
    per_pixel = {}
    for side in (32, 64):
        res = count_flops(model, side)
        assert res["unsupported"] == {}
        assert res["by_operator"]["selective_scan_fwd"] == _official_flops_scan(name, side)
        per_pixel[side] = (res["flops"] - head) / side**2
    assert per_pixel[32] == per_pixel[64]  # exact: every count here is an integer product
    gflops = (per_pixel[64] * 224**2 + head) / 1e9
    table = OFFICIAL[name][2]
    assert abs(gflops - table) / table < 0.02, gflops


def _hash_fill(model: nn.Module) -> nn.Module:
    """Deterministic pseudo-random weights (a float64 sine hash: the same on every machine), with the
    SSM parameters in their working ranges; the official model was filled the same way, by sorted key."""
    with torch.no_grad():
        for i, (k, p) in enumerate(sorted(model.state_dict().items())):
            t = torch.arange(p.numel(), dtype=torch.float64)
            h = torch.frac(torch.sin(t * 12.9898 + i * 78.233) * 43758.5453) - 0.5
            if k.endswith("A_logs"):
                v = (
                    torch.log(torch.arange(1, p.shape[1] + 1, dtype=torch.float64)).repeat(p.shape[0])
                    + 0.5 * h
                )
            elif k.endswith("dt_projs_bias"):
                v = -2.0 + h
            elif k.endswith("Ds") or (p.dim() == 1 and k.endswith("weight")):
                v = 1.0 + 0.2 * h
            elif p.dim() == 1:
                v = 0.05 * h
            else:
                v = 2.0 * h / p[0].numel() ** 0.5
            p.copy_(v.view(p.shape))
    return model


# Logits of the official VSSM (MzeroMiko/VMamba classification/models/vmamba.py, its pure-PyTorch scan)
# with depths (1, 1, 2, 1), dims 32, 10 classes, weights from _hash_fill, on the input of the test below:
# v05_noz + ln2d + downsample v3 + patchembed v2 + d_state 1 + ssm_ratio 2 + MLP 4, and v0 + ln + v1 + v1.
OFFICIAL_LOGITS = {
    "vmamba_small_s2l15": [
        1.70828,
        -1.591006,
        -0.909049,
        2.109767,
        1.264576,
        -2.177006,
        -1.070276,
        1.468595,
        0.583315,
        0.369118,
    ],
    "vanilla_vmamba_tiny": [
        1.060055,
        0.012671,
        0.441431,
        0.860272,
        0.228246,
        -0.217241,
        0.760045,
        0.596632,
        1.055335,
        0.405909,
    ],
}


@pytest.mark.parametrize("name", list(OFFICIAL_LOGITS))
def test_outputs_match_the_official_implementation(name):
    model = _hash_fill(timm.create_model(name, depths=(1, 1, 2, 1), embed_dim=32, num_classes=10)).eval()
    t = torch.arange(3 * 64 * 96, dtype=torch.float64)
    x = ((torch.frac(torch.sin(t * 4.1414) * 9631.17) - 0.5).view(1, 3, 64, 96) * 4.0).float()
    with torch.no_grad():
        logits = model(x)[0]
    # one direction swapped or A_logs + 0.5 in one block moves these by > 7e-4
    torch.testing.assert_close(logits, torch.tensor(OFFICIAL_LOGITS[name]), rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------------------- checkpoints


def test_official_format_checkpoint_loads_strict(tmp_path):
    src = _tiny()
    path = tmp_path / "vssm1_tiny_0230s.pth"
    torch.save({"model": src.state_dict(), "epoch": 264}, path)
    model = timm.create_model(
        "vmamba_tiny_s1l8", pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
    )
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)

    small = timm.create_model("vmamba_tiny_s1l8", depths=(1, 1, 1, 1))
    sd = small.state_dict()
    del sd["layers.2.blocks.0.op.A_logs"]
    torch.save({"model": sd}, path)
    with pytest.raises(RuntimeError, match="A_logs"):  # strict: a missing key is an error
        timm.create_model(
            "vmamba_tiny_s1l8",
            depths=(1, 1, 1, 1),
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(path)),
        )


def test_legacy_names_and_conv_shaped_linears_load(tmp_path):
    """Older official releases: ln_1 / self_attention / norm / head / patch_embed.proj names, and
    Linear2d weights saved 1x1-conv shaped; the official loader renames and reshapes these."""
    torch.manual_seed(0)
    src = _perturb(timm.create_model("vanilla_vmamba_tiny", depths=(1, 1, 1, 1)))
    legacy = {}
    for k, v in src.state_dict().items():
        k = k.replace("patch_embed.0.", "patch_embed.proj.").replace("patch_embed.2.", "patch_embed.norm.")
        k = k.replace(".norm.", ".ln_1.") if ".blocks." in k and ".op." not in k else k
        k = k.replace(".op.", ".self_attention.").replace("classifier.", "")
        if k.endswith("in_proj.weight"):
            v = v[:, :, None, None]
        legacy[k] = v
    assert "layers.0.blocks.0.ln_1.weight" in legacy and "head.weight" in legacy and "norm.bias" in legacy
    path = tmp_path / "vssmtiny.pth"
    torch.save({"model": legacy}, path)
    model = timm.create_model(
        "vanilla_vmamba_tiny",
        depths=(1, 1, 1, 1),
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
    )
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)


# ------------------------------------------------------------------------------------ forward / timm API


def test_forward_backward_every_parameter_gets_a_gradient():
    model = _tiny().train()
    x = torch.randn(2, 3, 32, 64)
    out = model(x)
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_vanilla_forward_backward():
    torch.manual_seed(0)
    model = _perturb(
        timm.create_model("vanilla_vmamba_tiny", depths=(1, 1, 1, 1), drop_path_rate=0.0)
    ).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_grad_checkpointing_gives_the_same_output_and_gradients():
    model = _tiny(depths=(1, 1, 2, 1)).train()
    x = torch.randn(2, 3, 64, 64)
    ref = model(x)
    ref.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    assert all(s.grad_checkpointing for s in model.layers)
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)


def test_forward_intermediates_and_features_only_non_square():
    src = _tiny(depths=(1, 1, 2, 1)).eval()
    x = torch.randn(2, 3, 64, 96)
    shapes = [(2, 96, 16, 24), (2, 192, 8, 12), (2, 384, 4, 6), (2, 768, 2, 3)]
    with torch.no_grad():
        final, inter = src.forward_intermediates(x)
        torch.testing.assert_close(final, src.forward_features(x))
        assert [tuple(t.shape) for t in inter] == shapes
        nhwc = src.forward_intermediates(x, output_fmt="NHWC", intermediates_only=True)
        for a, b in zip(inter, nhwc):
            torch.testing.assert_close(a.permute(0, 2, 3, 1), b)
        # the last stage output is what the head normalises and pools
        normed = src.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[0]
        logits = src.classifier.head(normed.mean(dim=(2, 3)))
        torch.testing.assert_close(logits, src(x))
        early = src.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        torch.testing.assert_close(early[0], inter[1])

    feats = timm.create_model("vmamba_tiny_s1l8", depths=(1, 1, 2, 1), features_only=True).eval()
    assert feats.feature_info.channels() == [96, 192, 384, 768]
    assert feats.feature_info.reduction() == [4, 8, 16, 32]
    core = feats.model
    missing = core.load_state_dict(src.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(f"outnorm{i}.{p}" for i in range(4) for p in ("weight", "bias"))
    _perturb(core, seed=1)
    with torch.no_grad():
        got = feats(x)
        # each stage output before its downsample, through that stage's own LayerNorm, NCHW
        h = core.patch_embed(x)
        for i, stage in enumerate(core.layers):
            h = stage.blocks(h)
            want = getattr(core, f"outnorm{i}")(h).permute(0, 3, 1, 2)
            assert got[i].shape == shapes[i]
            torch.testing.assert_close(got[i], want)
            h = stage.downsample(h)

    some = timm.create_model("vmamba_tiny_s1l8", depths=(1, 1, 2, 1), features_only=True, out_indices=(0, 2))
    assert [tuple(t.shape) for t in some(x)] == [shapes[0], shapes[2]]
    names = {k.split(".")[1] for k in some.state_dict()}
    assert "outnorm0" in names and "outnorm2" in names and "outnorm1" not in names and "outnorm3" not in names
    assert len(some.model.layers) == 3
    assert not any(k.startswith("model.classifier") for k in some.state_dict())


def test_prune_intermediate_layers_keeps_the_taken_outputs():
    model = _tiny(depths=(1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        assert model.prune_intermediate_layers([0, 1]) == [0, 1]
        after = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    assert len(model.layers) == 2
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b)


def test_classifier_api():
    model = _tiny(depths=(1, 1, 1, 1)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 768, 2, 2)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 768)
        model.reset_classifier(10)
        assert model(x).shape == (2, 10) and model.get_classifier().out_features == 10
        model.reset_classifier(0)
        assert model(x).shape == (2, 768)
        model.reset_classifier(0, "")
        assert model(x).shape == (2, 768, 2, 2)  # NCHW, as forward_features and pool_size
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(10, "max")

    matcher = model.group_matcher()
    groups = timm.models.group_parameters(model, matcher)
    assert any(n.startswith("patch_embed") for n in groups[0])  # the stem is the first group
    from timm.optim import create_optimizer_v2

    opt = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(model.layers[0].blocks[0].op.A_logs) in no_decay
    assert id(model.layers[0].blocks[0].op.x_proj_weight) not in no_decay


def test_compile_fullgraph_equals_eager():
    model = _tiny(depths=(1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 64, 64)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize("size", [(224, 200), (100, 96), (16, 32)])
def test_bad_input_size_is_a_clear_error(size):
    model = timm.create_model("vmamba_tiny_s1l8", depths=(1, 1, 1, 1))
    h, w = size
    with pytest.raises(ValueError, match=rf"{h}x{w}.*multiples of 32"):
        model(torch.randn(1, 3, h, w))
    with pytest.raises(ValueError, match=r"multiples of 32"):
        model.forward_intermediates(torch.randn(1, 3, h, w))
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\)"):
        model(torch.randn(1, 4, 64, 64))


def test_release_file_with_yacs_config_and_ema_loads_model_weights(tmp_path):
    from yacs.config import CfgNode

    kw = dict(depths=(1, 1, 1, 1), embed_dim=16)
    src, ema = timm.create_model("vmamba_tiny_s1l8", **kw), timm.create_model("vmamba_tiny_s1l8", **kw)
    cfg = CfgNode()
    cfg.MODEL = CfgNode()
    cfg.MODEL.NAME = "vssm1_tiny"
    path = tmp_path / "ckpt_epoch_1.pth"
    torch.save({"model": src.state_dict(), "model_ema": ema.state_dict(), "config": cfg, "epoch": 1}, path)
    overlay = dict(file=str(path), custom_load=True)
    loaded = timm.create_model("vmamba_tiny_s1l8", pretrained=True, pretrained_cfg_overlay=overlay, **kw)
    for (k, a), b in zip(src.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k  # the `model` weights, not `model_ema`
    other = timm.create_model("vmamba_tiny_s1l8", pretrained=True, pretrained_cfg_overlay=overlay, num_classes=7, **kw)
    assert other.get_classifier().out_features == 7
    # anything else pickled in the file is refused before it runs
    torch.save({"model": src.state_dict(), "hook": print}, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="refusing to unpickle"):
        timm.create_model("vmamba_tiny_s1l8", pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "odd.pth"), custom_load=True), **kw)


def test_features_only_hook_extractor_is_refused_clearly():
    with pytest.raises(ValueError, match="feature_cls='getter'"):
        timm.create_model("vmamba_tiny_s1l8", depths=(1, 1, 1, 1), embed_dim=16, features_only=True, feature_cls="hook")
