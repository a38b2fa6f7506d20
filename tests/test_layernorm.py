"""CPU tests of the LayerNorm op (`vssm.kernels.layernorm`) and of `vssm.norm.LayerNorm`.

The Triton kernels run under the interpreter in child processes (TRITON_INTERPRET must be set before
triton is imported); everything is checked against F.layer_norm on float64 copies of the inputs.
Outside the interpreter the op's PyTorch path and the module's fallback are checked in process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vssm.kernels.layernorm import layer_norm
from vssm.norm import LayerNorm

# Shared by the child scripts: the float64 oracle, scale-aware closeness, spies on the kernels.
_PRELUDE = r"""
import os, sys
import torch
import torch.nn.functional as F
from vssm.kernels.layernorm import layer_norm, op, triton_layernorm as tln

assert os.environ["TRITON_INTERPRET"] == "1"
REL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}
launched = {"fwd": [], "bwd": []}

class Spy:
    def __init__(self, name, kernel):
        self.name, self.kernel = name, kernel
    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            launched[self.name].append((grid, args, kwargs))
            return self.kernel[grid](*args, **kwargs)
        return launch

tln._ln_fwd, tln._ln_bwd = Spy("fwd", tln._ln_fwd), Spy("bwd", tln._ln_bwd)

def close(got, want, rel, what):
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if want.numel() == 0:
        return
    err = (got.double() - want).abs().max().item()
    scale = want.abs().max().item()
    assert err <= rel * scale + 1e-9, f"{what}: max error {err:.3g}, scale {scale:.3g}, rel {rel}"

def make(shape, C, dtype, pdtype, affine, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2 + 3).to(dtype)
    w = (torch.randn(C, generator=g) * 0.5 + 1).to(pdtype) if affine in ("wb", "w") else None
    b = (torch.randn(C, generator=g) * 0.5).to(pdtype) if affine in ("wb", "b") else None
    return x, w, b

def oracle(x, w, b, eps, dy, view):
    leaves = [t.detach().double().requires_grad_(True) if t is not None else None for t in (x, w, b)]
    xin = view(leaves[0])
    y = F.layer_norm(xin, (xin.shape[-1],), leaves[1], leaves[2], eps)
    grads = torch.autograd.grad(y, [t for t in leaves if t is not None], dy.double())
    return y.detach(), grads

def check(fn, x, w, b, rel, what, eps=1e-5, out_dtype=None, rel_out=None, rel_params=None, seed=0, view=None):
    # fn(view(x), w, b) and its gradients against the oracle; view (default: none) makes a strided input
    # from the leaf x (a clone of a strided tensor would not keep its strides)
    view = view or (lambda t: t)
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in (x, w, b)]
    xin = view(leaves[0])
    y = fn(xin, leaves[1], leaves[2], eps, out_dtype)
    assert y.dtype == (out_dtype or x.dtype), (what, y.dtype)
    assert y.shape == xin.shape, (what, y.shape)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1)).to(y.dtype)
    grads = torch.autograd.grad(y, [t for t in leaves if t is not None], dy)
    want_y, want_grads = oracle(x, w, b, eps, dy, view)
    close(y, want_y, rel_out or rel, what + " y")
    names = [n for n, t in zip(("dx", "dweight", "dbias"), (x, w, b)) if t is not None]
    for name, got, want, t in zip(names, grads, want_grads, [t for t in (x, w, b) if t is not None]):
        assert got.dtype == t.dtype, (what, name, got.dtype, t.dtype)
        close(got, want, rel if name == "dx" else (rel_params or rel), f"{what} {name}")

def public(x, w, b, eps, out_dtype):
    return layer_norm(x, w, b, eps, out_dtype=out_dtype)
"""

# Every shape / dtype / affine combination through the eager path (plain tensors: `_EagerLayerNorm`).
_GRID = _PRELUDE + r"""
n = 0
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    for M in (1, 7, 130):
        for C in (1, 3, 96, 100):
            for affine in ("wb", "none"):
                x, w, b = make((M, C), C, dtype, dtype, affine, seed=n)
                before = len(launched["fwd"]), len(launched["bwd"])
                check(public, x, w, b, REL[dtype], f"{dtype} M={M} C={C} {affine}", seed=n)
                assert (len(launched["fwd"]), len(launched["bwd"])) == (before[0] + 1, before[1] + 1), \
                    "the Triton kernels did not run"
                n += 1
# the forward of M=130, C=96 needs several programs with a partial last block
grid, args, kw = next(l for l in launched["fwd"] if l[1][5] == 130 and l[1][6] == 96)
assert grid[0] > 1 and 130 % kw["BLOCK_M"] != 0, (grid, kw)
# weight only / bias only, a leading shape, eps
for affine in ("w", "b"):
    x, w, b = make((2, 5, 100), 100, torch.float32, torch.float32, affine, seed=7)
    check(public, x, w, b, 1e-5, "f32 " + affine, eps=1e-3)
# the backward walking several row blocks per program (fewer programs than blocks)
tln.DEFAULT_TILES = tln.NormTiles(fwd_elems=256, bwd_elems=128, max_rows=8, bwd_programs=3)
for dtype in (torch.float32, torch.bfloat16):
    for C in (3, 100):
        x, w, b = make((130, C), C, dtype, dtype, "wb", seed=C)
        check(public, x, w, b, REL[dtype], f"small tiles {dtype} C={C}")
        grid, args, kw = launched["bwd"][-1]
        assert grid[0] == 3 and args[-2] > 3 and args[-2] % 3 != 0, (grid, args[-3:])  # runs of unequal length
print("ok", n)
"""

# The backward's one launch: the partial rows of dweight / dbias summed by the last program to arrive (the
# interpreter runs the programs in order, so that is the program with the highest id unless a test moves
# the counter). Small tiles: 5 or 7 programs; at C = 100 the sum takes 4 steps of 32 columns, each in 4
# steps of 2 partial rows.
_FUSED = _PRELUDE + r"""
KEY = (-1, -1, 0)  # the workspace of CPU tensors under the interpreter
tln.DEFAULT_TILES = tln.NormTiles(fwd_elems=1024, bwd_elems=512, max_rows=8, bwd_programs=7, finish_cols=32,
                                  finish_elems=64)

def counter():
    return tln._WORKSPACES[KEY][0].item()

def grads(x, w, b, dy, need=(True, True, True)):
    leaves = [t.detach().clone().requires_grad_(r) for t, r in zip((x, w, b), need)]
    y = layer_norm(*leaves)
    return torch.autograd.grad(y, [t for t in leaves if t.requires_grad], dy)

def want_grads(x, w, b, dy, need=(True, True, True)):
    want = oracle(x, w, b, 1e-5, dy, lambda t: t)[1]
    return [g for g, r in zip(want, need) if r]

def randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))

# neither dweight nor dbias needed (frozen parameters): no partials, no counter
x, w, b = make((130, 100), 100, torch.float32, torch.float32, "wb", seed=20)
dy = randn((130, 100), 21)
(gx,) = grads(x, w, b, dy, (True, False, False))
kw = launched["bwd"][-1][2]
assert kw["NEED_DW"] is False and kw["NEED_DB"] is False, kw
assert KEY not in tln._WORKSPACES, "a backward without dweight / dbias took the workspace"
close(gx, want_grads(x, w, b, dy)[0], 1e-5, "neither dx")

# two shapes in a row: the partials' buffer made for the first, grown for the second (2 x 7 x 100 floats),
# then kept for the first again
sizes = []
for (M, C) in ((40, 3), (130, 100), (40, 3)):
    x, w, b = make((M, C), C, torch.float32, torch.float32, "wb", seed=M + C)
    check(public, x, w, b, 1e-5, f"shape {M}x{C}")
    grid, args, kw = launched["bwd"][-1]
    assert grid[0] > 1 and (kw["FIN_C"], kw["FIN_P"]) == ((4, 16) if C == 3 else (32, 2)), (grid, kw)
    assert counter() == 0, counter()
    sizes.append((tln._WORKSPACES[KEY][1].numel(), tln._WORKSPACES[KEY][1].data_ptr()))
assert sizes[0][0] < 2 * 7 * 100 <= sizes[1][0] and sizes[2] == sizes[1], sizes

# several programs and steps of the sum, in the parameters' dtypes, against float64
for dtype, pdtype, out_dtype in ((torch.float32, torch.float32, None), (torch.bfloat16, torch.bfloat16, None),
                                 (torch.bfloat16, torch.float32, torch.float32)):
    for C in (3, 100):
        x, w, b = make((130, C), C, dtype, pdtype, "wb", seed=C + 1)
        check(public, x, w, b, REL[dtype], f"{dtype} / {pdtype} C={C}", out_dtype=out_dtype,
              rel_params=REL[pdtype])
        assert launched["bwd"][-1][0][0] == 7 and counter() == 0

# only dweight, only dbias
x, w, b = make((130, 100), 100, torch.float32, torch.float32, "wb", seed=22)
dy = randn((130, 100), 23)
for need in ((True, True, False), (True, False, True), (False, True, False)):
    got = grads(x, w, b, dy, need)
    kw = launched["bwd"][-1][2]
    assert (kw["NEED_DW"], kw["NEED_DB"]) == need[1:], (need, kw)
    for g, want, name in zip(got, want_grads(x, w, b, dy, need), [n for n, r in zip("xwb", need) if r]):
        close(g, want, 1e-5, f"need {need}: d{name}")
    assert counter() == 0, (need, counter())

# repeated calls: the same gradients bit for bit, the counter at 0 after each call, the same buffer; another
# call between them (a dweight / dbias left unwritten would keep its values)
xa, wa, ba = make((130, 100), 100, torch.float32, torch.float32, "wb", seed=24)
dya = randn((130, 100), 25)
xb, wb, bb = make((130, 100), 100, torch.float32, torch.float32, "wb", seed=26)
first = grads(xa, wa, ba, dya)
for g, want in zip(first, want_grads(xa, wa, ba, dya)):
    close(g, want, 1e-5, "repeated: first call")
buffer = tln._WORKSPACES[KEY][1].data_ptr()
for i in range(2):
    grads(xb, wb, bb, randn((130, 100), 27 + i))
    assert counter() == 0
    again = grads(xa, wa, ba, dya)
    assert all(torch.equal(g, h) for g, h in zip(first, again)), f"call {i + 2} differs"
    assert counter() == 0
assert tln._WORKSPACES[KEY][1].data_ptr() == buffer

# the sum is made by the program that sees n_programs - 1 earlier arrivals, whichever it is, and by it
# alone: with the counter at 2 before the launch, program P - 3 sums while the rows of the last two programs
# still hold what the buffer held (NaN here), and those two leave the counter at 2
count, part = tln._WORKSPACES[KEY]
part.fill_(float("nan"))
count.fill_(2)
gx, gw, gb = grads(xa, wa, ba, dya)
assert torch.isnan(gw).all() and torch.isnan(gb).all() and torch.equal(gx, first[0]), (gw, gb)
assert counter() == 2, counter()
count.zero_()
assert all(torch.equal(g, h) for g, h in zip(first, grads(xa, wa, ba, dya)))

# a new stream's workspace when _MAX_WORKSPACES are kept: the old ones are dropped, not kept without end
del tln._WORKSPACES[KEY]
for i in range(tln._MAX_WORKSPACES):
    tln._WORKSPACES[("stream", i)] = None
assert all(torch.equal(g, h) for g, h in zip(first, grads(xa, wa, ba, dya)))
assert list(tln._WORKSPACES) == [KEY] and counter() == 0
print("ok")
"""

# The dispatcher path (torch.ops.vssm.*), storage, strides, out_dtype, empty x and the module.
_EXTRAS = _PRELUDE + r"""
import torch.nn as nn
from vssm.norm import LayerNorm

def ops(x, w, b, eps, out_dtype):
    rows = x.reshape(-1, x.shape[-1])
    y, stats = torch.ops.vssm.layernorm_fwd(rows, w, b, eps, out_dtype or x.dtype)
    assert not stats.requires_grad and stats.shape == (2, rows.shape[0])
    return y.view(x.shape)

for dtype in (torch.float32, torch.bfloat16, torch.float16):
    for affine in ("wb", "none", "w"):
        x, w, b = make((130, 100), 100, dtype, dtype, affine, seed=3)
        before = len(launched["bwd"])
        check(ops, x, w, b, REL[dtype], f"dispatcher {dtype} {affine}")
        assert len(launched["bwd"]) == before + 1

def ptrs(ts):
    return [t.untyped_storage().data_ptr() for t in ts if t.numel()]

x, w, b = make((130, 100), 100, torch.bfloat16, torch.float32, "wb", seed=4)
outs = torch.ops.vssm.layernorm_fwd(x, w, b, 1e-5, torch.float32)
dy = torch.randn(130, 100)
grads = torch.ops.vssm.layernorm_bwd(dy, x, w, b, outs[1])
for group in (outs, grads):
    p = ptrs(group)
    assert len(p) == len(group) and len(set(p)) == len(group), "outputs share storage"
    assert not set(p) & set(ptrs([x, w, b, dy])), "an output shares storage with an input"
assert outs[1].dtype == torch.float32 and outs[1].shape == (2, 130)
assert grads[0].dtype == torch.bfloat16 and grads[1].dtype == grads[2].dtype == torch.float32

# out_dtype=float32 from bfloat16 x (the autocast case): y and the float32 parameters' grads are float32-exact
check(public, x, w, b, 1e-2, "bf16 -> f32", out_dtype=torch.float32, rel_out=1e-5, rel_params=1e-5)
check(ops, x, w, b, 1e-2, "bf16 -> f32 dispatcher", out_dtype=torch.float32, rel_out=1e-5, rel_params=1e-5)

# non-contiguous x: transposed leading dims (a copy), rows of a wider tensor (read in place), strided columns
base, w, b = make((6, 22, 200), 100, torch.float32, torch.float32, "wb", seed=5)
views = {"transpose": lambda t: t[..., :100].transpose(0, 1), "row stride": lambda t: t[..., :100],
         "column stride": lambda t: t[..., ::2]}
for name, view in views.items():
    check(public, base, w, b, 1e-5, name, view=view)
    check(ops, base, w, b, 1e-5, name + " dispatcher", view=view)
assert 200 in [l[1][7] for l in launched["fwd"][-6:]], "rows of a wider tensor were copied"

# empty x: no launch
before = len(launched["fwd"])
for shape, C in (((0, 5), 5), ((2, 0, 5), 5), ((3, 0), 0)):
    x, w, b = make(shape, C, torch.float32, torch.float32, "wb", seed=6)
    check(public, x, w, b, 1e-5, f"empty {shape}")
assert len(launched["fwd"]) == before

# the module: by default (the child runs with VSSM_FUSED_LN unset: auto) fused from vssm.norm.AUTO_MIN_NUMEL
# elements of x when the dtypes allow, F.layer_norm otherwise
import vssm.norm as vnorm
assert "VSSM_FUSED_LN" not in os.environ
auto_min = vnorm.AUTO_MIN_NUMEL
for dtype in (torch.float32, torch.bfloat16):
    ref = nn.LayerNorm(96).to(dtype)
    with torch.no_grad():
        ref.weight.normal_(1, 0.5)
        ref.bias.normal_(0, 0.5)
    mod = LayerNorm(96).to(dtype)
    mod.load_state_dict(ref.state_dict())
    x = (torch.randn(2, 9, 96) * 2 + 1).to(dtype)
    before = len(launched["fwd"])
    vnorm.AUTO_MIN_NUMEL = x.numel() + 1  # one element short of the auto size: F.layer_norm
    assert torch.equal(mod(x), ref(x))
    assert len(launched["fwd"]) == before, "the module ran the kernels under the auto size"
    vnorm.AUTO_MIN_NUMEL = x.numel()
    got = mod(x)
    assert len(launched["fwd"]) == before + 1, "the module did not run the kernels"
    want = F.layer_norm(x.double(), (96,), ref.weight.double(), ref.bias.double())
    assert got.dtype == dtype
    close(got, want, REL[dtype], f"module {dtype}")
    # parameters in another dtype than x, or CPU autocast: exactly F.layer_norm
    before = len(launched["fwd"])
    if dtype == torch.float32:  # float32 parameters, bfloat16 x: PyTorch's mixed-dtype kernel
        xb = x.bfloat16()
        assert torch.equal(mod(xb), ref(xb))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(mod(x), ref(x))
    assert len(launched["fwd"]) == before, "the module ran the kernels where F.layer_norm must run"
vnorm.AUTO_MIN_NUMEL = auto_min
assert auto_min > 2 * 9 * 96
# a module's own size under auto (SiMBA's norms: 0), overridden by VSSM_FUSED_LN=0
x = torch.randn(2, 9, 96)
for size, runs in ((0, True), (x.numel(), True), (x.numel() + 1, False)):
    before = len(launched["fwd"])
    LayerNorm(96, fused_min_numel=size)(x)
    assert len(launched["fwd"]) == before + runs, (size, runs)
os.environ["VSSM_FUSED_LN"] = "0"
before = len(launched["fwd"])
LayerNorm(96, fused_min_numel=0)(x)
assert len(launched["fwd"]) == before, "VSSM_FUSED_LN=0 did not override the module's size"
# VSSM_FUSED_LN=1: the kernels at any size (the rest of this script)
os.environ["VSSM_FUSED_LN"] = "1"
before = len(launched["fwd"])
LayerNorm(96)(torch.randn(2, 96))
assert len(launched["fwd"]) == before + 1, "VSSM_FUSED_LN=1 did not run the kernels on a small x"
# a frozen weight: the backward makes no partial sums for it; dx and dbias as before
x, w, b = make((130, 100), 100, torch.float32, torch.float32, "wb", seed=8)
xl, bl = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
dy = torch.randn(130, 100)
gx, gb = torch.autograd.grad(layer_norm(xl, w, bl), [xl, bl], dy)
assert launched["bwd"][-1][2]["NEED_DW"] is False and launched["bwd"][-1][2]["NEED_DB"] is True
want = oracle(x, w, b, 1e-5, dy, lambda t: t)[1]
close(gx, want[0], 1e-5, "frozen weight dx")
close(gb, want[2], 1e-5, "frozen weight dbias")
# fvcore counts the fused op as it counts aten::layer_norm (5 per element with a weight)
from vssm.flops import count_flops
net = nn.Sequential(nn.Flatten(2), LayerNorm(16), nn.Linear(16, 4))  # (1, 3, 4, 4) -> (1, 3, 16) rows
fused = count_flops(net, (3, 4, 4))
os.environ["VSSM_FUSED_LN"] = "0"
plain = count_flops(net, (3, 4, 4))
os.environ["VSSM_FUSED_LN"] = "1"
assert fused["flops"] == plain["flops"] > 3 * 16 * 5 and not fused["unsupported"], (fused, plain)
# float64 and empty x: F.layer_norm itself, not the op's PyTorch path
for xx in (torch.randn(2, 96, dtype=torch.float64), torch.randn(0, 96)):
    mod = LayerNorm(96).to(xx.dtype)
    assert torch.equal(mod(xx), nn.functional.layer_norm(xx, (96,), mod.weight, mod.bias))
# no silent second derivative: create_graph through the kernels' backward raises
x = torch.randn(3, 96, requires_grad=True)
(g,) = torch.autograd.grad(LayerNorm(96)(x).pow(2).sum(), x, create_graph=True)
try:
    g.sum().backward()
except RuntimeError:
    pass
else:
    raise AssertionError("a second derivative through the kernels did not raise")
print("ok")
"""


_RMS = _PRELUDE + r"""
import timm.layers
import torch.nn as nn
from vssm.kernels.layernorm import rms_norm
from vssm.norm import LinearInputRmsNorm

def rms_ref(x, w, eps):
    return torch.rms_norm(x.double(), (x.shape[-1],), None if w is None else w.double(), eps)

g = torch.Generator().manual_seed(0)
n = 0
for shape in ((1, 1), (7, 3), (130, 100), (2, 5, 192)):
    C = shape[-1]
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for out_dtype in (None, torch.float32, torch.bfloat16):
            for affine in (True, False):
                x = (torch.randn(*shape, generator=g) * 3 + 0.5).to(dtype)
                w = (torch.rand(C, generator=g) + 0.5) if affine else None
                before = len(launched["fwd"])
                with torch.no_grad():
                    y = rms_norm(x, w, 1e-5, out_dtype=out_dtype)
                assert len(launched["fwd"]) == before + 1 and launched["fwd"][-1][2]["RMS"], "no RMS kernel launch"
                want = out_dtype or dtype
                assert y.dtype == want and y.shape == x.shape
                rel = 1e-2 if torch.bfloat16 in (want, dtype) else 2e-3 if torch.float16 in (want, dtype) else 1e-5
                ref = rms_ref(x, w, 1e-5)
                err = (y.double() - ref).abs().max().item()
                assert err <= rel * ref.abs().max().item(), (shape, dtype, out_dtype, affine, err)
                n += 1
# rows of a wider tensor are read in place; a bad value in one row leaves the others unchanged
base = torch.randn(9, 300)
x = base[:, :100]
w = torch.rand(100) + 0.5
with torch.no_grad():
    y = rms_norm(x, w, 1e-6)
    x2 = x.clone(); x2[4, 7] = float("nan")
    y2 = rms_norm(x2, w, 1e-6)
assert (y.double() - rms_ref(x, w, 1e-6)).abs().max() < 1e-5
assert torch.isnan(y2[4]).all() and torch.equal(torch.cat([y2[:4], y2[5:]]), torch.cat([y[:4], y[5:]]))
# with a gradient to record: torch.rms_norm (no kernel launch), gradients against float64
before = len(launched["fwd"])
xg = torch.randn(6, 40, requires_grad=True)
wg = (torch.rand(40) + 0.5).requires_grad_(True)
gx, gw = torch.autograd.grad(rms_norm(xg, wg, 1e-5).pow(2).sum(), (xg, wg))
xr, wr = xg.detach().double().requires_grad_(True), wg.detach().double().requires_grad_(True)
rx, rw = torch.autograd.grad(rms_ref(xr, wr, 1e-5).pow(2).sum(), (xr, wr))
assert len(launched["fwd"]) == before
assert (gx.double() - rx).abs().max() < 1e-4 and (gw.double() - rw).abs().max() < 1e-3
# the module: timm's RmsNorm's parameters, its output in the Linear's dtype, the kernel only without a gradient
mod = LinearInputRmsNorm(64, eps=1e-5)
ref_mod = timm.layers.RmsNorm(64, eps=1e-5)
assert list(mod.state_dict()) == list(ref_mod.state_dict()) == ["weight"]
with torch.no_grad():
    mod.weight.uniform_(0.5, 1.5)
ref_mod.load_state_dict(mod.state_dict())
x = torch.randn(3, 11, 64)
before = len(launched["fwd"])
with torch.no_grad():
    assert (mod(x) - ref_mod(x)).abs().max() < 1e-5
    assert mod.to(torch.bfloat16)(x).dtype == torch.bfloat16  # the weight's dtype, from a float32 stream
mod.float()
assert len(launched["fwd"]) == before + 2
y = mod(x)  # grad mode, weight requires grad: timm's path
assert len(launched["fwd"]) == before + 2 and y.requires_grad
print("ok", n)
"""


def _run_child(script: str) -> str:
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("VSSM_FUSED_LN", None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().startswith("ok"), (proc.stdout[-2000:] + proc.stderr[-4000:])
    return proc.stdout


def test_kernels_against_float64_over_the_grid():
    """Interpreter: rows {1, 7, 130} x C {1, 3, 96, 100} x float32 / bfloat16 / float16, with and without
    weight and bias: outputs and the gradients of x, weight and bias against F.layer_norm in float64; the
    backward walking several row blocks per program."""
    _run_child(_GRID)


def test_backward_sums_the_parameters_in_its_last_program():
    """Interpreter: the backward's one launch, dweight / dbias summed by the program that arrives last
    (several programs, several steps of the sum), against float64; only dweight, only dbias, neither;
    repeated calls bit for bit with the counter back at 0; two shapes in a row; the sum made by the
    program that sees the count, whichever it is."""
    _run_child(_FUSED)


def test_kernels_through_the_dispatcher_strides_and_module():
    """Interpreter: the torch.ops.vssm ops directly (autograd through register_autograd), outputs in separate
    storage, out_dtype=float32 from bfloat16, non-contiguous x, empty x, and `vssm.norm.LayerNorm`."""
    _run_child(_EXTRAS)


# ----------------------------------------------------------------------------------------------
# outside the interpreter: the PyTorch path and the module's fallback


@pytest.fixture
def no_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("VSSM_FUSED_LN", raising=False)


def _grads(fn, x, w, b, dy):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in (x, w, b)]
    y = fn(*leaves)
    return y, torch.autograd.grad(y, [t for t in leaves if t is not None], dy)


def _rel_err(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("dtype,rel", [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("affine", [True, False])
def test_pytorch_path_equals_f_layer_norm(no_interpreter, dtype, rel, affine):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 4, 37, generator=g) * 2 + 3).to(dtype)
    w = (torch.randn(37, generator=g) + 1).to(dtype) if affine else None
    b = torch.randn(37, generator=g).to(dtype) if affine else None
    dy = torch.randn(3, 4, 37, generator=g).to(dtype)
    y, grads = _grads(lambda *a: layer_norm(*a, eps=1e-4), x, w, b, dy)
    assert torch.equal(y, F.layer_norm(x, (37,), w, b, 1e-4))
    _, want = _grads(lambda *a: F.layer_norm(a[0], (37,), a[1], a[2], 1e-4),
                     *[t.double() if t is not None else None for t in (x, w, b, dy)])
    for got, ref in zip(grads, want):
        assert got.dtype == dtype
        assert _rel_err(got, ref) <= rel


def test_pytorch_path_out_dtype_and_empty(no_interpreter):
    x = torch.randn(5, 16).bfloat16()
    w, b = torch.randn(16), torch.randn(16)
    y = layer_norm(x, w, b, out_dtype=torch.float32)
    assert y.dtype == torch.float32
    assert _rel_err(y, F.layer_norm(x.double(), (16,), w.double(), b.double())) <= 1e-6
    for shape in ((0, 16), (2, 0, 16)):
        xe = torch.randn(shape, requires_grad=True)
        we, be = w.clone().requires_grad_(), b.clone().requires_grad_()
        ye = layer_norm(xe, we, be)
        assert ye.shape == shape
        dx, dw, db = torch.autograd.grad(ye.sum(), [xe, we, be])
        assert dx.shape == shape and torch.equal(dw, torch.zeros(16)) and torch.equal(db, torch.zeros(16))
    assert layer_norm(torch.randn(3, 0), torch.randn(0), torch.randn(0)).shape == (3, 0)


def test_op_registration_with_opcheck(no_interpreter):
    """Schema, fake implementations and autograd registration of the op pair (PyTorch path)."""
    x, w, b = torch.randn(6, 8, requires_grad=True), torch.randn(8, requires_grad=True), torch.randn(8)
    torch.library.opcheck(torch.ops.vssm.layernorm_fwd, (x, w, b, 1e-5, torch.float32),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    stats = torch.ops.vssm.layernorm_fwd(x, w, b, 1e-5, torch.float32)[1]
    torch.library.opcheck(torch.ops.vssm.layernorm_bwd, (torch.randn(6, 8), x.detach(), w.detach(), None, stats),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False}])
def test_module_state_dict_matches_nn_layernorm(kwargs):
    ours, ref = LayerNorm(24, eps=1e-6, **kwargs), nn.LayerNorm(24, eps=1e-6, **kwargs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    ours.load_state_dict(ref.state_dict())
    assert ours.eps == ref.eps and ours.normalized_shape == ref.normalized_shape


@pytest.mark.parametrize("flag", ["0", "1", "auto", None])
def test_module_without_kernels_is_super_forward(no_interpreter, monkeypatch, flag):
    """VSSM_FUSED_LN=0 always, and =1 / auto (the default) on CPU tensors without the interpreter, at any
    size: F.layer_norm exactly, the op never called."""
    if flag is not None:
        monkeypatch.setenv("VSSM_FUSED_LN", flag)
    import vssm.norm

    def boom(*a, **k):
        raise AssertionError("the fused op ran")

    monkeypatch.setattr(vssm.norm, "layer_norm_unchecked", boom)
    monkeypatch.setattr(vssm.norm, "AUTO_MIN_NUMEL", 1)
    torch.manual_seed(0)
    ref = nn.LayerNorm(32)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    ours = LayerNorm(32)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 32, requires_grad=True)
    y, y_ref = ours(x), ref(x)
    assert torch.equal(y, y_ref)
    gx, gw = torch.autograd.grad(y.square().sum(), [x, ours.weight])
    gx_ref, gw_ref = torch.autograd.grad(y_ref.square().sum(), [x, ref.weight])
    assert torch.equal(gx, gx_ref) and torch.equal(gw, gw_ref)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "0"])
def test_module_rejects_a_bad_fused_min_numel(bad):
    with pytest.raises(ValueError, match="fused_min_numel"):
        LayerNorm(4, fused_min_numel=bad)


def test_module_rejects_a_bad_flag(monkeypatch):
    monkeypatch.setenv("VSSM_FUSED_LN", "yes")
    with pytest.raises(ValueError, match="VSSM_FUSED_LN"):
        LayerNorm(4)(torch.randn(2, 4))


def test_bad_inputs_name_the_argument():
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"`weight` has shape \(7,\), expected \(8,\)"):
        layer_norm(x, torch.randn(7))
    with pytest.raises(ValueError, match=r"`bias` has shape \(8, 1\), expected \(8,\)"):
        layer_norm(x, torch.randn(8), torch.randn(8, 1))
    with pytest.raises(TypeError, match="`weight` must be a tensor"):
        layer_norm(x, [1.0] * 8)
    with pytest.raises(TypeError, match="`x` must be a tensor"):
        layer_norm(x.tolist())
    with pytest.raises(TypeError, match="`x` must be a floating-point"):
        layer_norm(torch.ones(4, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="`x` must have at least one dimension"):
        layer_norm(torch.tensor(1.0))
    with pytest.raises(TypeError, match="`out_dtype`"):
        layer_norm(x, out_dtype=torch.int32)
    with pytest.raises(ValueError, match="`eps`"):
        layer_norm(x, eps=-1.0)
    with pytest.raises(ValueError, match="`weight` is on meta"):
        layer_norm(x, torch.randn(8, device="meta"))


def test_module_is_one_fx_node():
    """The module is a leaf of torch.fx graphs (one call_module node, as nn.LayerNorm), whatever the flag."""
    import torch
    import torch.fx

    from vssm.norm import LayerNorm

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), LayerNorm(8))
    ops = [(n.op, str(n.target)) for n in torch.fx.symbolic_trace(net).graph.nodes]
    assert ("call_module", "1") in ops and not any(op == "call_function" for op, _ in ops), ops


def test_lower_precision_output_is_a_flag_only(no_interpreter):
    """`lower_precision_output` changes nothing outside CUDA autocast: same state_dict, same result as
    nn.LayerNorm (float32, and under CPU autocast), shown in the repr."""
    torch.manual_seed(0)
    ref = nn.LayerNorm(16)
    ours = LayerNorm(16, lower_precision_output=True)
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert "lower_precision_output=True" in repr(ours) and "lower_precision" not in repr(LayerNorm(16))
    x = torch.randn(3, 16)
    assert torch.equal(ours(x), ref(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(ours(x), ref(x))


_SYMBOLIC = """
import torch
import vssm.norm
from vssm.norm import LayerNorm
vssm.norm.AUTO_MIN_NUMEL = 64
mod = LayerNorm(16)
x = torch.randn(6, 16)

def targets(ep):
    return {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}

# static shapes: 96 elements >= 64, the fused op is in the graph (the kernels' path is live here)
static = targets(torch.export.export(mod, (x,)))
assert any("vssm.layernorm_fwd" in t for t in static), static
# a symbolic batch: no guard on it (a constraint violation would raise), aten's layer_norm
batch = torch.export.Dim("batch", min=2, max=1 << 20)
ep = torch.export.export(mod, (x,), dynamic_shapes=({0: batch},))
dynamic = targets(ep)
assert any("layer_norm" in t for t in dynamic) and not any("vssm" in t for t in dynamic), dynamic
y = torch.randn(3, 16)
assert torch.allclose(ep.module()(y), torch.nn.functional.layer_norm(y, (16,), mod.weight, mod.bias), atol=1e-6)
print("ok")
"""


def test_module_auto_size_under_symbolic_shapes():
    """Interpreter: VSSM_FUSED_LN=auto under torch.export. With static shapes over the size the fused op is
    in the graph; with a symbolic batch the size rule puts no guard on it (the export would fail with a
    constraint violation) and the graph keeps aten's layer_norm."""
    _run_child(_SYMBOLIC)


def test_backward_program_cap():
    """The backward's programs at VMamba-T's sizes and beyond: at most 1056; with dweight / dbias at most
    1 MiB of partials (one program reads them all), but 132 at the least (wide rows); never more than the
    row blocks; without dweight / dbias only the first bound."""
    pytest.importorskip("triton")
    from vssm.kernels.layernorm.triton_layernorm import DEFAULT_TILES as T
    from vssm.kernels.layernorm.triton_layernorm import _bwd_plan

    for (M, C), want in {(401408, 96): 1056, (25088, 384): 341, (6272, 768): 170, (100000, 4096): 132,
                         (50, 96): 2}.items():
        programs = _bwd_plan(M, C, T, True)[3]
        assert programs == want, (M, C, programs)
        assert programs * C * 8 <= T.partial_bytes or programs == T.min_programs
    assert _bwd_plan(6272, 768, T, False)[3] == 1056


def test_rms_norm_kernel_and_module():
    """Interpreter: `rms_norm`'s kernel pass over rows {1, 7, 130, 2 x 5} x C {1, 3, 100, 192}, float32 / bfloat16 /
    float16 in and out, with and without a weight, against torch.rms_norm in float64; rows read in place from a wider
    tensor; a NaN in one row leaves the other rows' outputs unchanged; with a gradient to record, torch.rms_norm (no
    launch) and its gradients; `LinearInputRmsNorm`: timm's state_dict, the weight's dtype out, the kernel only without
    a gradient."""
    _run_child(_RMS)


def test_rms_norm_checks_its_arguments(no_interpreter):
    from vssm.kernels.layernorm import rms_norm

    x = torch.randn(4, 8)
    for kwargs, exc, match in (
        (dict(x=[1.0]), TypeError, "`x` must be a tensor"),
        (dict(x=torch.tensor(1.0)), ValueError, "at least one dimension"),
        (dict(x=torch.ones(2, 3, dtype=torch.int64)), TypeError, "floating-point"),
        (dict(x=x, weight=torch.ones(7)), ValueError, r"`weight` has shape \(7,\), expected \(8,\)"),
        (dict(x=x, eps=-1.0), ValueError, "`eps` must be a real number >= 0"),
        (dict(x=x, out_dtype=torch.int32), TypeError, "`out_dtype`"),
    ):
        args = dict(weight=None, eps=1e-6)
        args.update(kwargs)
        out_dtype = args.pop("out_dtype", None)
        with pytest.raises(exc, match=match):
            rms_norm(args.pop("x"), args.pop("weight"), args.pop("eps"), out_dtype=out_dtype)
    # the PyTorch path (no kernel device here): torch.rms_norm in float32 for a half x, cast to out_dtype
    xb = (torch.randn(5, 8) * 4).bfloat16()
    w = torch.rand(8) + 0.5
    y = rms_norm(xb, w, 1e-5, out_dtype=torch.float32)
    assert y.dtype == torch.float32 and torch.equal(y, torch.rms_norm(xb.float(), (8,), w, 1e-5))
