"""The selective scan on the CPU as compiled loops (numba): forward and backward in the op's normal form.

One work item is a batch row, a group and a block of ``_CB`` channels of that group (the backward's
items also split the K directions); a ``parallel=True`` launcher runs a ``prange`` over contiguous
ranges of items, one per thread (see `_kernels`). The block's channels sit in the lanes of local
(step, channel) arrays, so the innermost loops run over channels: they hold no reduction, and LLVM
vectorises them under strict IEEE arithmetic (``fastmath=False``: NaN and inf propagate as in the step
loop). An item first gathers its inputs in its direction's visiting order (``index[k]``), then runs,
per step t and state n, for all its channels at once:

    dt_t = softplus(delta_t + delta_bias),  a_t = exp(dt_t A)
    forward   h_t = a_t h_{t-1} + dt_t B_t u_t,   out_t += scale (sum_n C_t h_t + D u_t) silu(z_t)
    backward  g_t = a_{t+1} g_{t+1} + C_t dy_t  (g_{L-1} also gets dlast),  dy_t = scale dout_t silu(z_t),
              du_t = dt_t sum_n g_t B_t + D dy_t,   ddt_t = sum_n g_t (h_{t-1} a_t A + u_t B_t),
              dA += g_t h_{t-1} a_t dt_t,  dB_t += g_t dt_t u_t,  dC_t += h_t dy_t,
              ddelta_t = ddt_t sigmoid(delta_t + delta_bias),  dz_t = scale dout_t y_t silu'(z_t)

The forward sums the K directions of a channel inside one item, in k order, back in natural token
order; it walks a tile of steps once per state n (decays computed where they are used, none stored),
y_t summed over n in n order. The backward keeps the states and decays of a whole item when they fit in ``_STORE`` elements,
else it keeps the state at the start of every T-step chunk and recomputes one chunk at a time while
it walks back. Parameter gradients (dA, dD, ddelta_bias) leave as per-row partials and dB / dC as
per-block partials (the channels of a block summed lane by lane in a fixed halving order), all summed
afterwards in a fixed order: results are deterministic, and every row's outputs and input gradients
depend on that row alone (NaN or inf in one sample never reaches another).

Every tensor reaches the loops as a 1-D numpy view of the storage it spans plus its element strides,
so one compiled signature per arithmetic dtype serves every layout (channel- or token-major, stride-0
over K). The arithmetic is float32 (float64 for float64 inputs; bf16/fp16 inputs are converted
first). In float32, exp, log, softplus and sigmoid are short polynomials written as LLVM IR (within a
few ulp of libm) so that the loops over them vectorise; float64 calls libm. Compilation happens
once per dtype, announced by a log line, and is cached on disk (``cache=True``).
"""

from __future__ import annotations

import logging
import math
import threading
import time

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .reference import compute_dtype

__all__ = ["cpu_backward", "cpu_forward"]

_CB = 64  # channels per work item, in the lanes of the innermost loops
_STORE = 1 << 18  # backward: keep the states and decays of at most this many (step, state, lane) per item

_log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# elementwise math as LLVM IR (straight-line code: loops over it vectorise)

# 2^f = sum_i (f ln2)^i / i! on |f| <= 1/2: the degree-6 term leaves 1.2e-7 relative error (~1 ulp)
_EXP2_POLY = (1.5403530393381606e-4, 1.3333558146428443e-3, 9.618129107628477e-3, 5.550410866482158e-2,
              0.2402265069591007, 0.6931471805599453, 1.0)
_LN2_HI, _LN2_LO = 0.693145751953125, 1.428606765330187e-06  # ln 2 = hi + lo, hi exact in 16 bits
_TL = 64  # forward: steps per tile of gathered inputs


def _llvm(builder, name: str, ty, *args):
    fn = builder.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [ty] * len(args)))
    return builder.call(fn, list(args))


def _const(ty, value: float):
    return ir.Constant(ty, value)


def _ir_pow2(builder, v, t, k, f):
    """2^k 2^f for integral k in [-126, 127] and |f| <= 1/2, with the special values of exp2(t) (v is
    the input, t = v or v log2(e)): NaN stays NaN, t > 127 gives inf, t < -126 gives 0 (no subnormals)."""
    ty, i32 = v.type, ir.IntType(32)
    p = _const(ty, _EXP2_POLY[0])
    for c in _EXP2_POLY[1:]:
        p = _llvm(builder, "llvm.fma", ty, p, f, _const(ty, c))
    scale = builder.shl(builder.add(builder.fptosi(k, i32), ir.Constant(i32, 127)), ir.Constant(i32, 23))
    e = builder.fmul(p, builder.bitcast(scale, ty))
    e = builder.select(builder.fcmp_ordered("<", t, _const(ty, -126.0)), _const(ty, 0.0), e)
    e = builder.select(builder.fcmp_ordered(">", t, _const(ty, 127.0)), _const(ty, math.inf), e)
    return builder.select(builder.fcmp_unordered("uno", v, v), v, e)


def _ir_round_clamped(builder, t):
    """rint(t) with t clamped to [-126, 127] (NaN -> -126: the integer part stays finite)."""
    lo, hi = _const(t.type, -126.0), _const(t.type, 127.0)
    t = builder.select(builder.fcmp_ordered(">", t, lo), t, lo)
    t = builder.select(builder.fcmp_ordered("<", t, hi), t, hi)
    return t, _llvm(builder, "llvm.rint", t.type, t)


def _ir_exp2(builder, v):
    """2^v. float32: v clamped to [-127, 128], k = round(v) by adding and subtracting 1.5 2^23 + 127 (the
    sum's low mantissa bits are k + 127, shifted into the exponent field: 2^k, 0 at k = -127, inf at
    k = 128), times a polynomial in v - k: 15 vector operations, the only compares being the clamps and the
    NaN test. NaN stays NaN, v > 127.5 gives inf, v <= -126.5 gives 0; in between, down to subnormal
    values, 2^v within 3 ulp (the polynomial's 1.2e-7). float64: llvm.exp2."""
    ty = v.type
    if isinstance(ty, ir.DoubleType):
        return _llvm(builder, "llvm.exp2", ty, v)
    lo, hi, magic = _const(ty, -127.0), _const(ty, 128.0), _const(ty, 12582912.0 + 127.0)
    t = builder.select(builder.fcmp_ordered(">", v, lo), v, lo)  # NaN -> -127: the arithmetic stays finite
    t = builder.select(builder.fcmp_ordered("<", t, hi), t, hi)
    s = builder.fadd(t, magic)  # exact: 1.5 2^23 + 127 + round(t), as an integer-valued float
    k = builder.fsub(s, magic)
    f = builder.fsub(t, k)  # exact, |f| <= 1/2
    p = _const(ty, _EXP2_POLY[0])
    for c in _EXP2_POLY[1:]:
        p = _llvm(builder, "llvm.fma", ty, p, f, _const(ty, c))
    i32 = ir.IntType(32)
    scale = builder.shl(builder.bitcast(s, i32), ir.Constant(i32, 23))  # (k + 127) << 23: 2^k, 0 or inf
    e = builder.fmul(p, builder.bitcast(scale, ty))
    return builder.select(builder.fcmp_unordered("uno", v, v), v, e)


def _ir_exp(builder, v):
    """e^v. float32: k = round(v log2 e), r = v - k ln2 in two exact-ish steps (Cody-Waite), then
    2^k 2^(r log2 e). float64: llvm.exp."""
    ty = v.type
    if isinstance(ty, ir.DoubleType):
        return _llvm(builder, "llvm.exp", ty, v)
    log2e = _const(ty, 1.4426950408889634)
    t = builder.fmul(v, log2e)
    _, k = _ir_round_clamped(builder, t)
    r = _llvm(builder, "llvm.fma", ty, k, _const(ty, -_LN2_HI), v)  # exact: k ln2_hi has 24 bits at most
    r = _llvm(builder, "llvm.fma", ty, k, _const(ty, -_LN2_LO), r)  # (out of range: replaced in _ir_pow2)
    return _ir_pow2(builder, v, t, k, builder.fmul(r, log2e))


def _ir_sigmoid(builder, v):
    one = _const(v.type, 1.0)
    return builder.fdiv(one, builder.fadd(one, _ir_exp(builder, builder.fneg(v))))


def _ir_softplus(builder, v):
    """log(1 + e^v) = max(v, 0) + log1p(e^-|v|). float32: log1p(e) = 2 atanh(s), s = e / (2 + e) in
    [0, 1/3] (odd terms to s^15 leave < 1e-9; above v = 20 the sum rounds to v, PyTorch's threshold).
    NaN stays NaN, +-inf give inf and 0."""
    ty = v.type
    e = _ir_exp(builder, builder.fneg(_llvm(builder, "llvm.fabs", ty, v)))
    relu = builder.select(builder.fcmp_ordered(">", v, _const(ty, 0.0)), v, _const(ty, 0.0))
    if isinstance(ty, ir.DoubleType):  # libm's log1p; v itself above 20 as PyTorch's softplus
        log1p = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty]), "log1p")
        res = builder.fadd(relu, builder.call(log1p, [e]))
        return builder.select(builder.fcmp_ordered(">", v, _const(ty, 20.0)), v, res)
    s = builder.fdiv(e, builder.fadd(e, _const(ty, 2.0)))
    s2 = builder.fmul(s, s)
    p = _const(ty, 1.0 / 15.0)
    for c in (1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0):
        p = _llvm(builder, "llvm.fma", ty, p, s2, _const(ty, c))
    two_s = builder.fmul(s, _const(ty, 2.0))
    return builder.fadd(relu, _llvm(builder, "llvm.fma", ty, builder.fmul(two_s, s2), p, two_s))


def _unary(fn, doc: str):
    @intrinsic
    def op(typingctx, x):
        if not isinstance(x, types.Float):
            return None
        return x(x), lambda context, builder, signature, args: fn(builder, args[0])

    op.__doc__ = doc
    return op


_exp2 = _unary(_ir_exp2, "2^x (see `_ir_exp2`).")
_sigmoid = _unary(_ir_sigmoid, "1 / (1 + e^-x).")
_softplus = _unary(_ir_softplus, "log(1 + e^x) (see `_ir_softplus`).")


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (one instruction on FMA hardware, in vector loops too)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None
    return a(a, b, c), lambda context, builder, signature, args: _llvm(builder, "llvm.fma", args[0].type, *args)


@intrinsic
def _typed(typingctx, like, value):
    """`value` (a Python float) in the dtype of the float `like` (float literals would promote float32)."""
    if not isinstance(like, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[1], signature.args[1], like)

    return like(like, value), codegen


# ----------------------------------------------------------------------------------------------
# the loops


@njit(cache=True)
def _lane_sums(vB, vC):
    """The sums of the _CB lanes of vB and of vC (both overwritten), halving: a fixed order that vectorises."""
    w = _CB // 2
    while w >= 4:
        for c in range(w):
            vB[c] += vB[c + w]
            vC[c] += vC[c + w]
        w //= 2
    return (vB[0] + vB[2]) + (vB[1] + vB[3]), (vC[0] + vC[2]) + (vC[1] + vC[3])


# Helpers index with unsigned integers: numba wraps negative signed indices around, and that per-element
# check keeps LLVM from vectorising a copy. Offsets and strides are never negative here.


@njit(cache=True)
def _gather(dst, src, off, s_c, s_t, pos, cb):
    """dst[t, c] = src[off + c s_c + pos[t] s_t] for c < cb (the unit-stride axis innermost)."""
    off, s_c, s_t = np.uint64(off), np.uint64(s_c), np.uint64(s_t)
    if s_c == 1:
        for t in range(pos.shape[0]):
            o = off + np.uint64(pos[t]) * s_t
            row = dst[t]
            for c in range(cb):
                row[c] = src[o + np.uint64(c)]
    else:
        for c in range(cb):
            o = off + np.uint64(c) * s_c
            for t in range(pos.shape[0]):
                dst[t, c] = src[o + np.uint64(pos[t]) * s_t]


@njit(cache=True)
def _scatter(dst, off, s_c, s_t, pos, src, cb, add):
    """dst[off + c s_c + pos[t] s_t] = src[t, c] (or += with `add`) for c < cb (unit stride innermost)."""
    off, s_c, s_t = np.uint64(off), np.uint64(s_c), np.uint64(s_t)
    if s_c == 1:
        for t in range(pos.shape[0]):
            o = off + np.uint64(pos[t]) * s_t
            row = src[t]
            if add:
                for c in range(cb):
                    dst[o + np.uint64(c)] += row[c]
            else:
                for c in range(cb):
                    dst[o + np.uint64(c)] = row[c]
    else:
        for c in range(cb):
            o = off + np.uint64(c) * s_c
            if add:
                for t in range(pos.shape[0]):
                    dst[o + np.uint64(pos[t]) * s_t] += src[t, c]
            else:
                for t in range(pos.shape[0]):
                    dst[o + np.uint64(pos[t]) * s_t] = src[t, c]


@njit(cache=True)
def _scatter_gated(dst, off, s_c, s_t, pos, src, gate, cb, add):
    """dst[off + c s_c + pos[t] s_t] = src[t, c] gate[t, c] (or += with `add`) for c < cb."""
    off, s_c, s_t = np.uint64(off), np.uint64(s_c), np.uint64(s_t)
    if s_c == 1:
        for t in range(pos.shape[0]):
            o = off + np.uint64(pos[t]) * s_t
            row = src[t]
            g = gate[t]
            if add:
                for c in range(cb):
                    dst[o + np.uint64(c)] += row[c] * g[c]
            else:
                for c in range(cb):
                    dst[o + np.uint64(c)] = row[c] * g[c]
    else:
        for c in range(cb):
            o = off + np.uint64(c) * s_c
            if add:
                for t in range(pos.shape[0]):
                    dst[o + np.uint64(pos[t]) * s_t] += src[t, c] * gate[t, c]
            else:
                for t in range(pos.shape[0]):
                    dst[o + np.uint64(pos[t]) * s_t] = src[t, c] * gate[t, c]


@njit(cache=True)
def _order(idx, si, k, pos):
    for t in range(pos.shape[0]):
        pos[t] = idx[k * si[0] + t * si[1]]


@njit(cache=True)
def _pack_bc(Bp, Cp, B, sB, C, sC, b, k, g, pos):
    """Bp[t, n] = B[b, k, g, n, pos[t]] (and C): the block's shared B, C in visiting order."""
    ob = np.uint64(b * sB[0] + k * sB[1] + g * sB[2])
    oc = np.uint64(b * sC[0] + k * sC[1] + g * sC[2])
    bn, bt, cn, ct = np.uint64(sB[3]), np.uint64(sB[4]), np.uint64(sC[3]), np.uint64(sC[4])
    for t in range(pos.shape[0]):
        p = np.uint64(pos[t])
        for n in range(Bp.shape[1]):
            Bp[t, n] = B[ob + np.uint64(n) * bn + p * bt]
            Cp[t, n] = C[oc + np.uint64(n) * cn + p * ct]


@njit(cache=True, fastmath=False)
def _prepare(n, ur, dr, zr, bias, Dc, dts, dtu, xD, gz, softplus, has_gate, gscale):
    """Rows t < n from the gathered u, delta, z: dt = softplus(delta + bias), dt u, D u and gscale silu(z)
    (gscale alone without z), lane-parallel."""
    for t in range(n):
        if softplus:
            for c in range(_CB):
                dts[t, c] = _softplus(dr[t, c] + bias[c])
        else:
            for c in range(_CB):
                dts[t, c] = dr[t, c] + bias[c]
        for c in range(_CB):
            dtu[t, c] = dts[t, c] * ur[t, c]
            xD[t, c] = Dc[c] * ur[t, c]
        if has_gate:
            for c in range(_CB):
                gz[t, c] = zr[t, c] * _sigmoid(zr[t, c]) * gscale
        else:
            for c in range(_CB):
                gz[t, c] = gscale


@njit(cache=True, fastmath=False)
def _walk(tl, n, dts, dtu, a2, hn, Bp, Cp, ys):
    """State n over steps t < tl of a tile, all lanes at once: h = 2^(dt_t a2) h + dt_t u_t B_t[n],
    ys_t += C_t[n] h. Each decay is computed where it is used (no stored decays)."""
    for t in range(tl):
        bn = Bp[t, n]
        cn = Cp[t, n]
        dt = dts[t]
        du = dtu[t]
        y = ys[t]
        for c in range(_CB):
            hv = _fma(_exp2(dt[c] * a2[c]), hn[c], du[c] * bn)
            hn[c] = hv
            y[c] = _fma(cn, hv, y[c])


def _forward_items(lo, hi, u, su, delta, sdl, A, sA, B, sB, C, sC, Dv, sD, z, sz, bias, sbias, idx, si,
                  out, so, last, batch, K, dim, L, N, G, scale, softplus, has_gate):
    """Work items [lo, hi) of the forward; item = (batch row b, group g, channels [c0, c0 + cb)). Works
    in tiles of _TL steps (the tile's inputs stay in cache): per state n, one walk over the tile's steps
    updates the lanes' h_n, computes each decay as it goes and adds C_t h_t into the outputs
    (y_t accumulates over n in n order, from D u_t). Direction k > 0 adds to what k - 1 wrote. The
    scratch arrays are made once for all the items of a call.

    out (batch, D, L) through its strides `so`; last (batch, K, D, N) contiguous."""
    ty = u.dtype
    log2e = _typed(u[0], 1.4426950408889634)
    dg = dim // G
    nb = (dg + _CB - 1) // _CB
    pos = np.empty(L, np.int64)
    Bp = np.empty((_TL, N), ty)
    Cp = np.empty((_TL, N), ty)
    ur = np.zeros((_TL, _CB), ty)  # lanes past cb stay 0: a = 1, h = 0, no output
    dr = np.zeros((_TL, _CB), ty)
    zr = np.zeros((_TL, _CB), ty)
    dts = np.empty((_TL, _CB), ty)
    dtu = np.empty((_TL, _CB), ty)
    gz = np.empty((_TL, _CB), ty)  # scale silu(z_t)
    ys = np.empty((_TL, _CB), ty)  # D u_t + sum_n C_t h_t, gated on the way out
    bc = np.zeros(_CB, ty)
    Dc = np.zeros(_CB, ty)
    A2 = np.zeros((N, _CB), ty)  # A log2(e): a_t = 2^(dt_t A2)
    h = np.zeros((N, _CB), ty)
    for item in range(lo, hi):
        b = item // (G * nb)
        g = (item // nb) % G
        c0 = g * dg + (item % nb) * _CB
        cb = min(_CB, g * dg + dg - c0)
        if cb < _CB:  # a short block after a full one: its unused lanes back to 0
            ur[:] = 0
            dr[:] = 0
            zr[:] = 0
            bc[:] = 0
            Dc[:] = 0
            A2[:] = 0
        for k in range(K):
            _order(idx, si, k, pos)
            for c in range(cb):
                bc[c] = bias[k * sbias[0] + (c0 + c) * sbias[1]]
                Dc[c] = Dv[k * sD[0] + (c0 + c) * sD[1]]
                for n in range(N):
                    A2[n, c] = A[k * sA[0] + (c0 + c) * sA[1] + n * sA[2]] * log2e
            h[:] = 0
            for s0 in range(0, L, _TL):
                tl = min(_TL, L - s0)
                ps = pos[s0:s0 + tl]
                _pack_bc(Bp, Cp, B, sB, C, sC, b, k, g, ps)
                _gather(ur, u, b * su[0] + k * su[1] + c0 * su[2], su[2], su[3], ps, cb)
                _gather(dr, delta, b * sdl[0] + k * sdl[1] + c0 * sdl[2], sdl[2], sdl[3], ps, cb)
                if has_gate:
                    _gather(zr, z, b * sz[0] + k * sz[1] + c0 * sz[2], sz[2], sz[3], ps, cb)
                _prepare(tl, ur, dr, zr, bc, Dc, dts, dtu, ys, gz, softplus, has_gate, scale)  # ys = D u
                for n in range(N):
                    _walk(tl, n, dts, dtu, A2[n], h[n], Bp, Cp, ys)
                _scatter_gated(out, b * so[0] + c0 * so[1], so[1], so[2], ps, ys, gz, cb, k > 0)
            for c in range(cb):
                for n in range(N):
                    last[((b * K + k) * dim + c0 + c) * N + n] = h[n, c]


def _backward_items(lo, hi, dout, sdo, dlast, u, su, delta, sdl, A, sA, B, sB, C, sC, Dv, sD, z, sz,
                   bias, sbias, idx, si, du, sdu, dd, sdd, dz, sdz, dA, dD, dbias, dB, dC,
                   batch, K, dim, L, N, G, T, scale, softplus, has_gate):
    """Work items [lo, hi) of the backward; item = (batch row b, direction k, group g, channel block j).

    du, dd (delta), dz: (batch, K, D, L) through their strides; dA (batch, K, D, N), dD and dbias
    (batch, K, D): per-row partials; dB, dC (batch, K, G, blocks, L, N): per-block partials. The states
    are recomputed T steps at a time from the chunk-start states (one chunk, no extra pass, if T >= L)."""
    for item in range(lo, hi):
        dg = dim // G
        nb = (dg + _CB - 1) // _CB
        j = item % nb
        g = (item // nb) % G
        k = (item // (nb * G)) % K
        b = item // (nb * G * K)
        c0 = g * dg + j * _CB
        cb = min(_CB, g * dg + dg - c0)
        nch = (L + T - 1) // T
        ty = u.dtype
        log2e = _typed(u[0], 1.4426950408889634)
        pos = np.empty(L, np.int64)
        _order(idx, si, k, pos)
        Bp = np.empty((L, N), ty)
        Cp = np.empty((L, N), ty)
        _pack_bc(Bp, Cp, B, sB, C, sC, b, k, g, pos)
        ur = np.zeros((L, _CB), ty)  # lanes past cb stay 0: no state, no gradient
        dr = np.zeros((L, _CB), ty)
        zr = np.zeros((L, _CB), ty)
        dos = np.zeros((L, _CB), ty)  # scale dout_t
        _gather(ur, u, b * su[0] + k * su[1] + c0 * su[2], su[2], su[3], pos, cb)
        _gather(dr, delta, b * sdl[0] + k * sdl[1] + c0 * sdl[2], sdl[2], sdl[3], pos, cb)
        _gather(dos, dout, b * sdo[0] + c0 * sdo[1], sdo[1], sdo[2], pos, cb)
        if has_gate:
            _gather(zr, z, b * sz[0] + k * sz[1] + c0 * sz[2], sz[2], sz[3], pos, cb)
        bc = np.zeros(_CB, ty)
        Dc = np.zeros(_CB, ty)
        Ab = np.zeros((N, _CB), ty)
        A2 = np.zeros((N, _CB), ty)
        ga = np.zeros((N, _CB), ty)  # a_{t+1} g_{t+1}; dlast at the end
        for c in range(cb):
            d = c0 + c
            bc[c] = bias[k * sbias[0] + d * sbias[1]]
            Dc[c] = Dv[k * sD[0] + d * sD[1]]
            for n in range(N):
                Ab[n, c] = A[k * sA[0] + d * sA[1] + n * sA[2]]
                A2[n, c] = Ab[n, c] * log2e
                ga[n, c] = dlast[((b * K + k) * dim + d) * N + n]
        dts = np.empty((L, _CB), ty)
        dtu = np.empty((L, _CB), ty)
        xD = np.empty((L, _CB), ty)
        gz = np.ones((L, _CB), ty)
        _prepare(L, ur, dr, zr, bc, Dc, dts, dtu, xD, gz, softplus, has_gate, _typed(u[0], 1.0))
        dys = np.empty((L, _CB), ty)  # dy_t = scale dout_t silu(z_t)
        for t in range(L):
            for c in range(_CB):
                dos[t, c] *= scale
                dys[t, c] = dos[t, c] * gz[t, c]
        starts = np.zeros((nch, N, _CB), ty)
        if nch > 1:  # the state at every chunk start
            h = np.zeros((N, _CB), ty)
            for t in range(L):
                if t % T == 0:
                    starts[t // T] = h
                for n in range(N):
                    bn = Bp[t, n]
                    for c in range(_CB):
                        h[n, c] = _fma(_exp2(dts[t, c] * A2[n, c]), h[n, c], dtu[t, c] * bn)
        hb = np.empty((T + 1, N, _CB), ty)
        ab = np.empty((T, N, _CB), ty)
        dAl = np.zeros((N, _CB), ty)
        gdu = np.empty((L, _CB), ty)  # du, d(delta), d(silu(z)) in visiting order
        gdd = np.empty((L, _CB), ty)
        gdz = np.empty((L, _CB), ty)
        ddt = np.empty(_CB, ty)
        gb = np.empty(_CB, ty)
        y = np.empty(_CB, ty)
        pB = np.empty(_CB, ty)
        pC = np.empty(_CB, ty)
        base = (((b * K + k) * G + g) * nb + j) * L * N
        for ch in range(nch - 1, -1, -1):
            t0 = ch * T
            t1 = min(L, t0 + T)
            hb[0] = starts[ch]
            for t in range(t0, t1):
                i = t - t0
                for n in range(N):
                    bn = Bp[t, n]
                    for c in range(_CB):
                        av = _exp2(dts[t, c] * A2[n, c])
                        ab[i, n, c] = av
                        hb[i + 1, n, c] = _fma(av, hb[i, n, c], dtu[t, c] * bn)
            for t in range(t1 - 1, t0 - 1, -1):
                i = t - t0
                p = pos[t]
                for c in range(_CB):
                    ddt[c] = 0
                    gb[c] = 0
                    y[c] = xD[t, c]
                for n in range(N):
                    bn = Bp[t, n]
                    cn = Cp[t, n]
                    for c in range(_CB):
                        gv = _fma(cn, dys[t, c], ga[n, c])
                        hv = hb[i + 1, n, c]
                        av = ab[i, n, c]
                        dla = gv * hb[i, n, c] * av
                        ddt[c] = _fma(dla, Ab[n, c], ddt[c])
                        gb[c] = _fma(gv, bn, gb[c])
                        dAl[n, c] = _fma(dla, dts[t, c], dAl[n, c])
                        pB[c] = gv * dtu[t, c]
                        pC[c] = hv * dys[t, c]
                        y[c] = _fma(cn, hv, y[c])
                        ga[n, c] = av * gv
                    dB[base + p * N + n], dC[base + p * N + n] = _lane_sums(pB, pC)
                for c in range(_CB):
                    gdu[t, c] = _fma(gb[c], dts[t, c], dys[t, c] * Dc[c])
                    gdd[t, c] = _fma(gb[c], ur[t, c], ddt[c])
                    gdz[t, c] = y[c]
        # the chain rule through softplus and silu, lane-parallel
        for t in range(L):
            if softplus:
                for c in range(_CB):
                    gdd[t, c] *= _sigmoid(dr[t, c] + bc[c])
            if has_gate:  # silu'(z) = sigmoid(z) (1 + z (1 - sigmoid(z)))
                for c in range(_CB):
                    sg = _sigmoid(zr[t, c])
                    gdz[t, c] *= dos[t, c] * (sg + zr[t, c] * (sg - sg * sg))
        add = cb < 0  # False, as a runtime bool: the forward's calls share the compiled `_scatter`
        _scatter(du, b * sdu[0] + k * sdu[1] + c0 * sdu[2], sdu[2], sdu[3], pos, gdu, cb, add)
        _scatter(dd, b * sdd[0] + k * sdd[1] + c0 * sdd[2], sdd[2], sdd[3], pos, gdd, cb, add)
        if has_gate:
            _scatter(dz, b * sdz[0] + k * sdz[1] + c0 * sdz[2], sdz[2], sdz[3], pos, gdz, cb, add)
        for c in range(cb):
            o = (b * K + k) * dim + c0 + c
            accD = _typed(u[0], 0.0)
            accb = accD
            for t in range(L):
                accD = _fma(dys[t, c], ur[t, c], accD)
                accb += gdd[t, c]
            dD[o] = accD
            dbias[o] = accb
            for n in range(N):
                dA[o * N + n] = dAl[n, c]


def _forward_launch(items_fn, items, chunks, u, su, delta, sdl, A, sA, B, sB, C, sC, Dv, sD, z, sz, bias, sbias, idx, si,
                    out, so, last, batch, K, dim, L, N, G, scale, softplus, has_gate):
    for j in prange(chunks):
        items_fn(np.int64(j) * items // chunks, (np.int64(j) + 1) * items // chunks, u, su, delta, sdl, A, sA, B, sB, C, sC, Dv, sD, z, sz, bias, sbias, idx, si,
                 out, so, last, batch, K, dim, L, N, G, scale, softplus, has_gate)


def _backward_launch(items_fn, items, chunks, dout, sdo, dlast, u, su, delta, sdl, A, sA, B, sB, C, sC, Dv, sD, z, sz,
                     bias, sbias, idx, si, du, sdu, dd, sdd, dz, sdz, dA, dD, dbias, dB, dC,
                     batch, K, dim, L, N, G, T, scale, softplus, has_gate):
    for j in prange(chunks):
        items_fn(np.int64(j) * items // chunks, (np.int64(j) + 1) * items // chunks, dout, sdo, dlast, u, su, delta, sdl, A, sA, B, sB, C, sC, Dv, sD, z, sz,
                 bias, sbias, idx, si, du, sdu, dd, sdd, dz, sdz, dA, dD, dbias, dB, dC,
                 batch, K, dim, L, N, G, T, scale, softplus, has_gate)


# ----------------------------------------------------------------------------------------------
# torch <-> the loops


def _flat(t: torch.Tensor | None, cd: torch.dtype, ndim: int = 4):
    """A 1-D numpy view (in dtype `cd`) of the storage `t` spans, and `t`'s element strides (padded to
    `ndim` with zeros). Stride-0 and strided views are read in place; other dtypes are converted over
    the span, where the strides stay valid. An absent tensor reads as one zero through zero strides."""
    if t is None:
        return np.zeros(1, dtype=np.float64 if cd == torch.float64 else np.float32), np.zeros(ndim, np.int64)
    span = 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride())) if t.numel() else 0
    flat = t.detach().as_strided((span,), (1,))
    if flat.dtype != cd and flat.is_floating_point():
        flat = flat.to(cd)
    return flat.numpy(), np.array(list(t.stride()) + [0] * (ndim - t.dim()), dtype=np.int64)


def _scalar(x: float, cd: torch.dtype):
    return np.float64(x) if cd == torch.float64 else np.float32(x)


_compiled: dict = {}
_compile_lock = threading.Lock()
_PY = {"forward": (_forward_items, _forward_launch), "backward": (_backward_items, _backward_launch)}


def _kernels(name: str, args: tuple):
    """(items, launch) for `name` and these argument types, compiled on first use (or loaded from numba's
    disk cache), with a log line saying how long compiling took.

    The item loop is compiled once, by itself; the ``parallel=True`` launcher runs a prange over as many
    contiguous ranges of items as there are threads (each range makes its scratch arrays once) on numba's
    threading layer, and calls the loop through a function pointer. (Called directly, the loop
    would be linked into the launcher and optimised and emitted a second time: twice the compile time.)
    float64 (tests, double-precision checks) runs the items on the calling thread: launch is None, and
    its first use compiles a fifth less."""
    key = (name, tuple(numba.typeof(a) for a in args))
    with _compile_lock:
        if key not in _compiled:
            items_py, launch_py = _PY[name]
            start = time.perf_counter()
            sig = types.void(types.int64, types.int64, *key[1])
            items_fn = njit(sig, cache=True, nogil=True, fastmath=False, error_model="numpy")(items_py)
            launch = None
            if key[1][0].dtype != types.float64:
                launch = njit(types.void(types.FunctionType(sig), types.int64, types.int64, *key[1]), parallel=True,
                              cache=True, fastmath=False)(launch_py)
            if items_fn.stats.cache_misses or launch is not None and launch.stats.cache_misses:
                _log.warning("vssm: compiled the numba CPU selective scan (%s, %s) in %.1f s; cached on disk for "
                             "later runs", name, key[1][0].dtype, time.perf_counter() - start)
            _compiled[key] = items_fn, launch
        return _compiled[key]


_fast: dict = {}  # (name, compute dtype) -> (items, launch): every argument's numba type follows from these


def _run(name: str, items: int, *args) -> None:
    """Work items [0, items) of the forward or backward loop, in parallel over numba's threads (as many as
    torch uses); items are independent, so neither the split nor the thread count changes a result."""
    fast_key = (name, args[0].dtype)  # arrays: 1-D, C-contiguous, writable; scalars: Python / numpy scalars
    kernels = _fast.get(fast_key)
    if kernels is None:
        kernels = _fast[fast_key] = _kernels(name, args)
    items_fn, launch = kernels
    if launch is None:
        items_fn(0, items, *args)
        return
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
    launch(items_fn, items, min(items, threads), *args)


def _index(index: torch.Tensor | None, K: int, L: int) -> torch.Tensor:
    if index is None:
        return torch.arange(L, dtype=torch.int32).expand(K, L)
    return index.to(torch.int32)


def _common(u, delta, A, B, C, D, z, delta_bias, index, cd):
    """The loops' arguments shared by forward and backward (arrays with their strides)."""
    K, L = u.shape[1], u.shape[3]
    return (*_flat(u, cd), *_flat(delta, cd), *_flat(A, cd), *_flat(B, cd, 5), *_flat(C, cd, 5), *_flat(D, cd),
            *_flat(z, cd), *_flat(delta_bias, cd), *_flat(_index(index, K, L), torch.int32))


def cpu_forward(u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale):
    """The op's forward in normal form (see op.py): out (batch, D, L) in u's dtype, laid out like
    `op.new_out`, and the last states (batch, K, D, N) in the compute dtype."""
    from .op import new_out

    cd = compute_dtype(u)
    batch, K, dim, L = u.shape
    N, G = A.shape[-1], B.shape[2]
    out = new_out(u, z)
    if out.numel() == 0 or N == 0:
        return out.zero_(), torch.zeros((batch, K, dim, N), dtype=cd)
    last = torch.empty((batch, K, dim, N), dtype=cd)
    res = out if out.dtype == cd else torch.empty_like(out, dtype=cd)
    nb = -(-(dim // G) // _CB)
    _run("forward", batch * G * nb, *_common(u, delta, A, B, C, D, z, delta_bias, index, cd),
         *_flat(res, cd), last.view(-1).numpy(), batch, K, dim, L, N, G, _scalar(scale, cd),
         bool(delta_softplus), z is not None)
    if res is not out:
        out.copy_(res)
    return out, last


def cpu_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale):
    """Gradients of `cpu_forward` for (u, delta, A, B, C, D, z, delta_bias) in normal form, in the
    compute dtype (None for an absent input); du, ddelta laid out like u, dz like z (see `op.new_like_layout`).
    dlast None: no gradient reached the last states (the compiled loop reads zeros)."""
    from .op import new_like_layout

    cd = compute_dtype(u)
    batch, K, dim, L = u.shape
    N, G = A.shape[-1], B.shape[2]
    nb = -(-(dim // G) // _CB)
    grads = [new_like_layout(like, tuple(u.shape), cd) for like in (u, u, z if z is not None else u)]  # du, ddelta, dz
    dA_rows = torch.zeros((batch, K, dim, N), dtype=cd)
    dD_rows = torch.zeros((batch, K, dim), dtype=cd)
    dbias_rows = torch.zeros((batch, K, dim), dtype=cd)
    dB_parts = torch.zeros((batch, K, G, nb, L, N), dtype=cd)
    dC_parts = torch.zeros_like(dB_parts)
    if u.numel() and N:
        T = max(1, L if L * N * _CB <= _STORE else _STORE // (N * _CB))  # steps whose states are kept at once
        dlast = torch.zeros((batch, K, dim, N), dtype=cd) if dlast is None else dlast.to(cd).contiguous()
        _run("backward", batch * K * G * nb, *_flat(dout, cd), dlast.view(-1).numpy(),
             *_common(u, delta, A, B, C, D, z, delta_bias, index, cd),
             *(x for g in grads for x in _flat(g, cd)), *(t.view(-1).numpy() for t in (dA_rows, dD_rows, dbias_rows)),
             dB_parts.view(-1).numpy(), dC_parts.view(-1).numpy(),
             batch, K, dim, L, N, G, T, _scalar(scale, cd), bool(delta_softplus), z is not None)
    else:
        for g in grads:
            g.zero_()
    return [grads[0], grads[1], _ordered_sum(dA_rows, 0), _ordered_sum(dB_parts, 3).transpose(-1, -2),
            _ordered_sum(dC_parts, 3).transpose(-1, -2), None if D is None else _ordered_sum(dD_rows, 0),
            None if z is None else grads[2], None if delta_bias is None else _ordered_sum(dbias_rows, 0)]


def _ordered_sum(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over `dim`, adding the slices one after another (a fixed order, whatever the thread count)."""
    if t.shape[dim] == 0:
        return t.sum(dim)
    total = t.select(dim, 0).clone()
    for i in range(1, t.shape[dim]):
        total += t.select(dim, i)
    return total
