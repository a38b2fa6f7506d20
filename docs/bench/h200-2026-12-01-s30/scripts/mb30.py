"""Stop 30 micro-benchmarks at Vim-Ti 1248 (batch 8) shapes: the non-scan kernels of the inference step."""
import dataclasses, sys
import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from triton.testing import do_bench
import vssm  # noqa
from vssm.kernels.conv1d import depthwise_conv1d
from vssm.kernels.selective_scan import triton_fwd as tf

torch.manual_seed(0)
dev, bf = "cuda", torch.bfloat16
b, L, C, E, N, R, K = 8, 6085, 192, 384, 16, 12, 2
M = b * L


def bench(tag, fn, nbytes=None):
    fn()
    ms = do_bench(fn, warmup=25, rep=200, return_mode="median")
    extra = f"  {nbytes / ms / 1e9:.2f} TB/s" if nbytes else ""
    print(f"{tag:60s} {ms * 1e3:8.1f} us{extra}", flush=True)
    return ms


print("== GEMMs")
u = torch.randn(K, E, M, device=dev, dtype=bf)
w_x = torch.randn(K, R + 2 * N, E, device=dev, dtype=bf) * 0.05
x_dbl = torch.bmm(w_x, u)
bench("x_proj bmm (2,44,384)@(2,384,M)", lambda: torch.bmm(w_x, u, out=x_dbl), u.numel() * 2)
w_x48 = torch.zeros(K, 48, E, device=dev, dtype=bf); w_x48[:, :44] = w_x
x48 = torch.bmm(w_x48, u)
bench("x_proj bmm 48 rows", lambda: torch.bmm(w_x48, u, out=x48), u.numel() * 2)
w_dt = torch.randn(K, E, R, device=dev, dtype=bf) * 0.2
delta = torch.empty(K, E, M, device=dev, dtype=bf)
bench("dt_proj bmm w (2,384,12) contiguous", lambda: torch.bmm(w_dt, x_dbl[:, :R], out=delta), delta.numel() * 2)
w16 = torch.zeros(K, E, 16, device=dev, dtype=bf); w16[..., :R] = w_dt
bench("dt_proj bmm w view ld16, K=12", lambda: torch.bmm(w16[..., :R], x_dbl[:, :R], out=delta), delta.numel() * 2)
bench("dt_proj bmm w ld16, K=16 (x48 zero rows)", lambda: torch.bmm(w16, x48[:, :16], out=delta), delta.numel() * 2)
ref = torch.bmm(w_dt, x_dbl[:, :R])
print("  ld16 err", (torch.bmm(w16[..., :R], x_dbl[:, :R]) - ref).abs().max().item())
for k in range(K):
    bench(f"dt_proj mm per direction k={k} (contig w)", lambda: torch.mm(w_dt[k], x_dbl[k, :R], out=delta[k]))
    break

print("== norm / add / out_proj")
x = torch.randn(b, L, C, device=dev)
wn = torch.rand(C, device=dev) + 0.5
y = torch.randn(b, L, C, device=dev, dtype=bf)


@triton.jit
def _rms_fwd(x_ptr, y_ptr, w_ptr, res_ptr, h_ptr, M, eps, C: tl.constexpr, BC: tl.constexpr, BM: tl.constexpr,
             ADD: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.arange(0, BC)
    m = (rows < M)[:, None] & (cols < C)[None, :]
    off = rows[:, None].to(tl.int64) * C + cols[None, :]
    xv = tl.load(x_ptr + off, mask=m, other=0.0)
    if ADD:
        xv += tl.load(y_ptr + off, mask=m, other=0.0).to(tl.float32)
        tl.store(res_ptr + off, xv, mask=m)
    rstd = 1.0 / tl.sqrt(tl.sum(xv * xv, axis=1) / C + eps)
    w = tl.load(w_ptr + cols, mask=cols < C, other=0.0)
    tl.store(h_ptr + off, (xv * rstd[:, None] * w[None, :]).to(h_ptr.dtype.element_ty), mask=m)


def rms_tr(x, w, y=None, BM=16, warps=4):
    h = torch.empty(x.shape, device=dev, dtype=bf)
    res = torch.empty_like(x) if y is not None else x
    _rms_fwd[(triton.cdiv(M, BM),)](x, y if y is not None else x, w, res, h, M, 1e-5, C=C, BC=256, BM=BM,
                                    ADD=y is not None, num_warps=warps)
    return res, h


hr = torch.rms_norm(x, (C,), wn, 1e-5)
print("  triton rms err", (rms_tr(x, wn)[1].float() - hr).abs().max().item())
r2, h2 = rms_tr(x, wn, y)
xr = x + y
print("  triton add+rms err", (r2 - xr).abs().max().item(), (h2.float() - torch.rms_norm(xr, (C,), wn, 1e-5)).abs().max().item())
bench("torch.rms_norm fp32->fp32", lambda: torch.rms_norm(x, (C,), wn, 1e-5), x.numel() * 8)
hh = hr.clone()
bench("cast fp32->bf16 (autocast in in_proj)", lambda: hh.to(bf), x.numel() * 6)
for BM, wp in ((8, 4), (16, 4), (32, 8), (4, 2)):
    bench(f"triton rms fp32->bf16 BM{BM} w{wp}", lambda: rms_tr(x, wn, None, BM, wp), x.numel() * 6)
    bench(f"triton add+rms BM{BM} w{wp}", lambda: rms_tr(x, wn, y, BM, wp), x.numel() * 12)
bench("x(fp32) + y(bf16)", lambda: x + y, x.numel() * 10)
o = torch.randn(b, L, E, device=dev, dtype=bf)
W = torch.randn(C, E, device=dev, dtype=bf) * 0.05
bench("out_proj F.linear bf16", lambda: F.linear(o, W), o.numel() * 2 + x.numel() * 2)
x2 = x.view(M, C)
try:
    r = torch.addmm(x2, o.view(M, E), W.t(), out_dtype=torch.float32)
    print("  addmm out_dtype err", (r - (x2 + F.linear(o.view(M, E), W).float())).abs().max().item())
    bench("addmm(x fp32, o, W^T, out_dtype=fp32)", lambda: torch.addmm(x2, o.view(M, E), W.t(), out_dtype=torch.float32))
except Exception as e:
    print("addmm out_dtype:", e)
o0, o1 = torch.randn(2, b, L, E, device=dev, dtype=bf)
bench("sum dirs (o0+o1) then out_proj", lambda: F.linear(o0 + o1, W))
oc = torch.randn(b, L, K, E, device=dev, dtype=bf)
Wc = torch.cat([W, W], 1)
bench("out_proj over (b,L,K,E) with [W W]", lambda: F.linear(oc.view(M, K * E), Wc))
bench("cat [W W] (per call)", lambda: torch.cat([W, W], 1))

print("== conv")
xz = torch.randn(b, L, 2 * E, device=dev, dtype=bf)
xs = xz[..., :E]
taps = torch.randn(K, E, 4, device=dev, dtype=bf) * 0.3
cb = torch.randn(K, E, device=dev, dtype=bf) * 0.1
for cm in (True, False):
    bench(f"conv both dirs channel_major={cm}", lambda: depthwise_conv1d(xs, taps, cb, [-3, 0], silu=True,
                                                                    channel_major=cm), M * E * 2 * 3)
bench("copy of (b,L,E) bf16 -> 2 outputs floor ref (clone x2)", lambda: (xs.clone(), xs.clone()))

print("== scan (projected inputs, channel-major u/delta, z token-major)")
uu = depthwise_conv1d(xs, taps, cb, [-3, 0], silu=True, channel_major=True).transpose(2, 3)  # (b,K,E,L)
from vssm.kernels.selective_scan.projected import _project_into, _bc
from vssm.kernels.selective_scan.op import prepare, _scan_fwd_impl
xd, dl = _project_into(uu, w_x, w_dt)
Bm, Cm = _bc(xd, R, N)
A = -torch.rand(K, E, N, device=dev).mul(15).add(1)
Dp = torch.randn(K, E, device=dev)
db = torch.randn(K, E, device=dev) * 0.5 - 4
z = xz[..., E:].transpose(1, 2)
args = prepare(uu, dl, A, Bm, Cm, Dp, z, db, True, ["natural", "reverse"], None, "mean", None, grad=False)
NEW = tf.triton_forward.__kwdefaults__["tiles"]
outs = {}
for tag, tiles in (("default", NEW), ("bd4", dataclasses.replace(NEW, fwd_smid_bd=4)),
                   ("T8 (no doubling)", dataclasses.replace(NEW, fwd_smid_long_max_programs=0)),
                   ("states-last", dataclasses.replace(NEW, fwd_smid=False))):
    tf.triton_forward.__kwdefaults__["tiles"] = tiles
    outs[tag] = _scan_fwd_impl(*args)[0]
    bench(f"scan fwd {tag}", lambda: _scan_fwd_impl(*args))
tf.triton_forward.__kwdefaults__["tiles"] = NEW
for k, v in outs.items():
    print(f"  {k} vs default max abs diff {(v.float() - outs['default'].float()).abs().max().item():.3e}")
