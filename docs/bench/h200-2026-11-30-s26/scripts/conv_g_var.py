"""Variants of the conv backward's g kernel (dw per tap without the where-masked (W, BL, BC) accumulator), timed
against the library's at Vim's and MambaVision's shapes; every variant's g / dw / db checked against the library's.
v2: one (BL, BC) accumulator per tap (W <= 4); v3: v2 with each shifted x tile loaded once for pre and dw."""
import sys, functools
import torch, triton
import triton.language as tl
from vssm.kernels.conv1d import triton_conv1d as mod
from vssm.kernels.intmath import cdiv, next_pow2
_pick = mod._pick

@triton.jit
def _acc(a0, a1, a2, a3, v, j: tl.constexpr):
    if j == 0:
        a0 += v
    elif j == 1:
        a1 += v
    elif j == 2:
        a2 += v
    else:
        a3 += v
    return a0, a1, a2, a3

@triton.jit
def _g_var(x, w, bias, o0, o1, o2, o3, o4, o5, o6, o7, dout, g, dw_part, db_part, L, C, K, n_chunks,
           sxb, sxl, sxc, swk, swc, swj, sbk, sbc, sdb, sdk, sdl, sdc,
           W: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, BL: tl.constexpr, BC: tl.constexpr,
           CHUNK: tl.constexpr, ONCE: tl.constexpr):
    pid_l, pid_c, pid_bk = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b = pid_bk // K
    k = pid_bk % K
    c = pid_c * BC + tl.arange(0, BC)
    cmask = c < C
    b64 = b.to(tl.int64)
    x_row = x + b64 * sxb
    shift = _pick(k, o0, o1, o2, o3, o4, o5, o6, o7)
    a0 = tl.zeros((BL, BC), dtype=tl.float32)
    a1 = tl.zeros((BL, BC), dtype=tl.float32)
    a2 = tl.zeros((BL, BC), dtype=tl.float32)
    a3 = tl.zeros((BL, BC), dtype=tl.float32)
    db_acc = tl.zeros((BL, BC), dtype=tl.float32)
    if HAS_BIAS:
        bk = tl.load(bias + k * sbk + c * sbc, mask=cmask, other=0.0).to(tl.float32)
    for l0 in range(pid_l * CHUNK, tl.minimum(pid_l * CHUNK + CHUNK, L), BL):
        t = l0 + tl.arange(0, BL)
        m = (t < L)[:, None] & cmask[None, :]
        gv = tl.load(dout + b64 * sdb + k.to(tl.int64) * sdk + t[:, None] * sdl + c[None, :] * sdc, mask=m, other=0.0)
        gv = gv.to(tl.float32)
        if ONCE:
            s0 = t + shift
            x0 = tl.load(x_row + s0[:, None] * sxl + c[None, :] * sxc, mask=((s0 >= 0) & (s0 < L))[:, None] & cmask[None, :], other=0.0).to(tl.float32)
            pre = x0 * tl.load(w + k * swk + c * swc, mask=cmask, other=0.0).to(tl.float32)[None, :]
            if W > 1:
                s1 = s0 + 1
                x1 = tl.load(x_row + s1[:, None] * sxl + c[None, :] * sxc, mask=((s1 >= 0) & (s1 < L))[:, None] & cmask[None, :], other=0.0).to(tl.float32)
                pre += x1 * tl.load(w + k * swk + c * swc + swj, mask=cmask, other=0.0).to(tl.float32)[None, :]
            if W > 2:
                s2 = s0 + 2
                x2 = tl.load(x_row + s2[:, None] * sxl + c[None, :] * sxc, mask=((s2 >= 0) & (s2 < L))[:, None] & cmask[None, :], other=0.0).to(tl.float32)
                pre += x2 * tl.load(w + k * swk + c * swc + 2 * swj, mask=cmask, other=0.0).to(tl.float32)[None, :]
            if W > 3:
                s3 = s0 + 3
                x3 = tl.load(x_row + s3[:, None] * sxl + c[None, :] * sxc, mask=((s3 >= 0) & (s3 < L))[:, None] & cmask[None, :], other=0.0).to(tl.float32)
                pre += x3 * tl.load(w + k * swk + c * swc + 3 * swj, mask=cmask, other=0.0).to(tl.float32)[None, :]
            if HAS_BIAS:
                pre += bk[None, :]
            if SILU:
                sig = tl.sigmoid(pre)
                gv = gv * sig * (1.0 + pre * (1.0 - sig))
            tl.store(g + (pid_bk.to(tl.int64) * L + t[:, None]) * C + c[None, :], gv, mask=m)
            a0 += gv * x0
            if W > 1:
                a1 += gv * x1
            if W > 2:
                a2 += gv * x2
            if W > 3:
                a3 += gv * x3
        else:
            if SILU:
                pre = mod._pre(x_row, sxl, sxc, w + k * swk, swc, swj, bias + k * sbk, t, c, cmask, L, shift, W, HAS_BIAS)
                sig = tl.sigmoid(pre)
                gv = gv * sig * (1.0 + pre * (1.0 - sig))
            tl.store(g + (pid_bk.to(tl.int64) * L + t[:, None]) * C + c[None, :], gv, mask=m)
            for j in tl.static_range(W):
                s = t + shift + j
                ms = ((s >= 0) & (s < L))[:, None] & cmask[None, :]
                xv = tl.load(x_row + s[:, None] * sxl + c[None, :] * sxc, mask=ms, other=0.0).to(tl.float32)
                a0, a1, a2, a3 = _acc(a0, a1, a2, a3, gv * xv, j)
        db_acc += gv
    part = (b64 * n_chunks + pid_l) * K + k
    base = dw_part + part * W * C + c
    tl.store(base, tl.sum(a0, axis=0), mask=cmask)
    if W > 1:
        tl.store(base + C, tl.sum(a1, axis=0), mask=cmask)
    if W > 2:
        tl.store(base + 2 * C, tl.sum(a2, axis=0), mask=cmask)
    if W > 3:
        tl.store(base + 3 * C, tl.sum(a3, axis=0), mask=cmask)
    if HAS_BIAS:
        tl.store(db_part + part * C + c, tl.sum(db_acc, axis=0), mask=cmask)

def run_g(kind, dout, x, weight, bias, offsets, BL=16, BC=128, CHUNK=256, warps=4):
    batch, L, C = x.shape
    K, _, W = weight.shape
    n_chunks = cdiv(L, CHUNK)
    dw_part = x.new_zeros((batch, n_chunks, K, W, C), dtype=torch.float32)
    db_part = x.new_zeros((batch, n_chunks, K, C), dtype=torch.float32)
    g = x.new_empty((batch, K, L, C), dtype=torch.float32)
    offs = mod._offset_args(offsets)
    grid = (n_chunks, cdiv(C, BC), batch * K)
    common = (x, weight, bias, *offs, dout, g, dw_part, db_part, L, C, K, n_chunks,
              *x.stride(), *weight.stride(), bias.stride(0), bias.stride(-1), *dout.stride())
    if kind == "lib":
        mod._conv_bwd_g[grid](*common, W=W, WP=next_pow2(W), HAS_BIAS=True, SILU=True, BL=BL, BC=BC, CHUNK=CHUNK,
                              num_warps=warps)
    else:
        _g_var[grid](*common, W=W, HAS_BIAS=True, SILU=True, BL=BL, BC=BC, CHUNK=CHUNK, ONCE=kind == "v3",
                     num_warps=warps)
    return g, dw_part.sum((0, 1)), db_part.sum((0, 1))

def err(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())

for name, (batch, L, C, offs) in {"vim_s_224": (128, 197, 768, (-3, 0)), "vim_ti_1248": (8, 6085, 384, (-3, 0)),
                                   "mv_t_same": (128, 196, 320, (-1,))}.items():
    for layout in ("token", "channel"):
        K, W = len(offs), 4 if offs != (-1,) else 3
        torch.manual_seed(0)
        xz = torch.randn(batch, L, 2 * C, device="cuda", dtype=torch.bfloat16)
        x = xz[..., :C]
        w = torch.randn(K, C, W, device="cuda") * 0.3
        b = torch.randn(K, C, device="cuda") * 0.1
        if layout == "token":
            dout = torch.randn(K, batch, L, C, device="cuda", dtype=torch.bfloat16).transpose(0, 1)
        else:  # (K, C, batch, L) storage, as the Vim mixer's channel-major conv output
            dout = torch.randn(K, C, batch, L, device="cuda", dtype=torch.bfloat16).permute(2, 0, 3, 1)
        ref = run_g("lib", dout, x, w, b, offs)
        for kind, BL in (("lib", 16), ("v2", 16), ("v3", 16), ("v2", 32), ("v3", 32), ("v3", 8)):
            got = run_g(kind, dout, x, w, b, offs, BL=BL)
            e = max(err(a, r) for a, r in zip(got, ref))
            ms = triton.testing.do_bench(functools.partial(run_g, kind, dout, x, w, b, offs, BL=BL), warmup=30, rep=200,
                                         return_mode="median")
            print(f"{name:12s} {layout:7s} {kind} BL{BL:3d}: g kernel + partial sums {ms*1e3:8.1f} us  diff {e:.1e}", flush=True)
