"""`projected_scan`: the selective scan whose delta, B and C are projections of its own input u (the Mamba
mixer's x_proj and dt_proj), with delta recomputed in the backward instead of kept for it.

Per direction k, over u (batch, K, D, L) with x_proj weights W_x (K, R + 2N, D) and dt_proj weights
W_dt (K, D, R):

    x_dbl[b, k] = W_x[k] @ u[b, k]              (R + 2N, L): dt (R rows), then B (N), then C (N)
    delta[b, k] = W_dt[k] @ x_dbl[b, k, :R]     (D, L)
    out         = selective_scan(u, delta, A, B = x_dbl[:, :, R:R+N], C = x_dbl[:, :, R+N:], D, z, ...)

Composed from torch ops, autograd keeps delta (batch, K, D, L) for the scan's backward and, for the
batched matmuls, each weight expanded over the batch: at Vim-S (batch 128, both directions, bf16) that
is 78 MB + 31 MB per layer. In plain eager mode (`vssm.kernels.eager`) one autograd.Function runs the
same computation and keeps only u, x_dbl and the weights: its backward recomputes delta with one small
batched matmul (2 R D L flops per row, against ~10 N D L for the scan), as mamba_ssm's fused mixer
does. With a backward to follow, a gate z shared by the directions is applied outside the scan kernels
(`gate`), which keeps the ungated output y (batch, D, L) for z's gradient instead of recomputing it inside
the kernels; without one, it goes into the forward kernels. Under
torch.compile, export, tracing and fake tensors it is the composed form (which is also the tests' oracle).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.autograd.function import once_differentiable

from ..conv1d.op import _conv_bwd_impl, new_conv_out
from ..eager import plain_eager
from ..env import interpreting
from ..launch import on_device_of
from ..layout import direction_matrices
from .gate import gate_backward, gate_forward
from .op import (
    _per_direction,
    _scan_bwd_impl,
    _scan_fwd_impl,
    _tk,
    _use_triton,
    backward_follows,
    default_backend,
    new_like_layout,
    new_out,
    prepare,
    selective_scan,
)
from .orders import Order
from .reference import compute_dtype

__all__ = ["conv_projected_scan", "conv_scan_directions", "conv_scan_supported", "projected_scan",
           "projected_scan_directions", "project", "scan_walks"]

# Without a backward, the shared gate runs inside the scan's forward kernels (False) or outside them as with one
# (True). H200, bf16, Vim-Ti at 1248 (batch 8): 24.65 -> 23.40 ms of GPU work per step inside (NOTES.md "Stop 29")
GATE_OUTSIDE_WITHOUT_GRAD = False


def _check(u, x_proj_weight, dt_proj_weight, A) -> tuple[int, int]:
    if not isinstance(u, torch.Tensor) or u.dim() != 4:
        got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"projected_scan: `u` has shape {got}, expected (batch, K, D, L)")
    _, K, dim, _ = u.shape
    return _check_weights(K, dim, u.dtype, u.device, "u", x_proj_weight, dt_proj_weight, A)


def _check_weights(K: int, dim: int, dtype, device, source: str, x_proj_weight, dt_proj_weight, A,
                   op: str = "projected_scan") -> tuple[int, int]:
    for name, w in (("x_proj_weight", x_proj_weight), ("dt_proj_weight", dt_proj_weight)):
        if not isinstance(w, torch.Tensor) or w.dim() != 3 or w.shape[0] != K:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(f"{op}: `{name}` has shape {got}, expected one matrix per direction (K={K}, ., .)")
        if w.dtype != dtype or w.device != device:
            raise ValueError(
                f"{op}: `{name}` is {w.dtype} on {w.device}, expected {source}'s dtype and device "
                f"({dtype} on {device}): cast the weights first"
            )
    if not isinstance(A, torch.Tensor) or A.dim() not in (2, 3):
        raise ValueError(f"{op}: `A` must be a (D, N) or (K, D, N) tensor")
    R, N = dt_proj_weight.shape[-1], A.shape[-1]
    if tuple(dt_proj_weight.shape[1:]) != (dim, R) or tuple(x_proj_weight.shape[1:]) != (R + 2 * N, dim):
        raise ValueError(
            f"{op}: with D={dim}, N={N} and dt rank R={R} (dt_proj_weight's last axis), `x_proj_weight` "
            f"must be (K, R + 2N, D) = ({K}, {R + 2 * N}, {dim}) and `dt_proj_weight` (K, D, R) = ({K}, {dim}, {R}); "
            f"got {tuple(x_proj_weight.shape)} and {tuple(dt_proj_weight.shape)}"
        )
    return R, N


def _project(u: torch.Tensor, x_proj_weight: torch.Tensor, dt_proj_weight: torch.Tensor):
    """x_dbl (batch, K, R + 2N, L) and delta (batch, K, D, L): one matmul each, the weights broadcast
    over the batch."""
    x_dbl = torch.matmul(x_proj_weight, u)
    return x_dbl, torch.matmul(dt_proj_weight, x_dbl[:, :, :dt_proj_weight.shape[-1]])


def _bmm_into(w: torch.Tensor, x: torch.Tensor, out: torch.Tensor, accumulate: bool = False) -> torch.Tensor:
    """out[:, k] = w[k] @ x[:, k] (``accumulate``: +=, inside the matmul, one rounding) for every direction k:
    w (K, M, P), x (batch, K, P, L), out (batch, K, M, L) in whatever layout it was allocated
    (`op.new_like_layout`). With each direction's tokens over the batch stored as one matrix (the batch inside
    the rows, `layout.is_batch_inner`, or token-major with the directions outside the batch) one batched
    matmul of K (M, P) @ (P, batch x L) products (`layout.direction_matrices`); otherwise one batched matmul
    per direction with the weight broadcast over the batch as a stride-0 view (torch.matmul's broadcasting
    copies the weight batch times first, a (batch x K, M, P) clone per call, and allocates its own contiguous
    output)."""
    xs, outs = direction_matrices(x), direction_matrices(out)
    if xs is not None and outs is not None and (outs.shape[0] == 1 or outs.stride(0) != 0):
        if accumulate:
            outs.baddbmm_(w, xs)
        else:
            torch.bmm(w, xs, out=outs)
        return out
    batch = x.shape[0]
    for k in range(w.shape[0]):
        wk = w[k].expand(batch, *w.shape[1:])
        if accumulate:
            out[:, k].baddbmm_(wk, x[:, k])
        else:
            torch.bmm(wk, x[:, k], out=out[:, k])
    return out


def _project_into(u: torch.Tensor, w_x: torch.Tensor, w_dt: torch.Tensor,
                  fast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`_project` without autograd, its outputs laid out as the op lays out u-like tensors (channel-major
    rows padded per `layout.PAD_TOKENS`, or token-major). ``fast``: the Triton kernels may run (`_delta_into`)."""
    batch, K, dim, L = u.shape
    x_dbl = _bmm_into(w_x, u, new_like_layout(u, (batch, K, w_x.shape[1], L), u.dtype))
    return x_dbl, _delta_into(x_dbl, w_dt, u, fast)


def _delta_into(x_dbl: torch.Tensor, w_dt: torch.Tensor, u: torch.Tensor, fast: bool = False) -> torch.Tensor:
    """delta (batch, K, D, L) = w_dt[k] @ (the dt rows of x_dbl), in u's layout. With ``fast``, a dt rank up to
    `triton_thin.MAX_R` whose rows are not a multiple of 16 bytes (cuBLAS's unaligned kernels: Vim-Ti's 12) and
    each direction's tokens one matrix (`layout.direction_matrices`), one Triton launch (`triton_thin`)."""
    batch, K, dim, L = u.shape
    R = w_dt.shape[-1]
    dt = x_dbl[:, :, :R]
    delta = new_like_layout(u, (batch, K, dim, L), u.dtype)
    thin = _tk().thin
    if (fast and R <= thin.MAX_R and (R * dt.element_size()) % 16 and dt.dtype in thin.DTYPES
            and (dt.is_cuda or interpreting())):
        xs, outs = direction_matrices(dt), direction_matrices(delta)
        if xs is not None and outs is not None:
            thin.thin_bmm(w_dt, xs, outs)
            return delta
    return _bmm_into(w_dt, dt, delta)




def _bc(x_dbl: torch.Tensor, R: int, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B and C (batch, K, 1, N, L): views of x_dbl's rows after the R dt rows."""
    return x_dbl[:, :, R:R + N].unsqueeze(2), x_dbl[:, :, R + N:].unsqueeze(2)


def project(u: torch.Tensor, x_proj_weight: torch.Tensor, dt_proj_weight: torch.Tensor, N: int):
    """The composed projections: delta (batch, K, D, L), B and C (batch, K, 1, N, L) (views of x_dbl)."""
    x_dbl, delta = _project(u, x_proj_weight, dt_proj_weight)
    return delta, *_bc(x_dbl, dt_proj_weight.shape[-1], N)


def _weight_grad(dy: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """sum over the batch of dy[:, k] @ x[:, k]^T, per direction (K, ., .), summed in float32 at least: where
    each direction's tokens are one matrix (`layout.direction_matrices`) one 2-D matmul per direction reducing
    over all batch x L tokens (accumulated in float32 by the matmul, rounded once; batched over the directions
    cuBLAS ran them without splitting the reduction: 183 against 40 us for Vim-Ti's dt_proj on an H200),
    otherwise batched products summed in float32."""
    a, b = direction_matrices(dy), direction_matrices(x)
    if a is not None and b is not None:
        res = dy.new_empty((dy.shape[1], dy.shape[2], x.shape[2]))
        for k in range(res.shape[0]):
            torch.mm(a[k], b[k].t(), out=res[k])
        return res if res.dtype == dtype else res.to(dtype)
    return torch.matmul(dy, x.transpose(-1, -2)).sum(0, dtype=compute_dtype(dy)).to(dtype)


def _scan_forward(ctx, u, x_dbl, delta, w_x, w_dt, A, D, z, delta_bias, spec, need_dz: bool):
    """The scan of the projected forms once u, x_dbl and delta are made: out, and the tensors the backward
    (`_scan_backward`) needs; records the rest on ctx."""
    orders, grid, combine, delta_softplus, backend, grad = spec  # grad: `backward_follows` at the call
    # one gate for every direction (z (batch, D, L), or K = 1): with a backward to follow, applied to the scan's
    # output outside the kernels, which then run without z forward and backward (see `gate`); without one,
    # inside the forward kernels (no extra pass over y, and out in z's layout from the kernel)
    outside = z is not None and (z.dim() == 3 or z.shape[1] == 1) and (grad or GATE_OUTSIDE_WITHOUT_GRAD)
    ctx.gate_dims = z.dim() if outside else 0
    gate = (z if z.dim() == 3 else z[:, 0]) if outside else None
    R, N = w_dt.shape[-1], A.shape[-1]
    B, C = _bc(x_dbl, R, N)
    op_args = prepare(u, delta, A, B, C, D, None if outside else z, delta_bias, delta_softplus, orders, grid,
                      combine, backend, grad=grad)
    out, _, states = _scan_fwd_impl(*op_args)
    A, D, z, delta_bias, index = op_args[2], op_args[5], op_args[6], op_args[7], op_args[8]
    y = None
    if outside:
        y = out  # the ungated sum over the directions
        # out token-major when u or z is, as the op lays it out; the backend is the one `prepare` resolved
        out = gate_forward(y, gate, _use_triton(op_args[12], u), out=new_out(op_args[0], gate.unsqueeze(1)))
        if not (grad and need_dz):
            y = None  # kept only for the gate's own gradient
    ctx.op_flags = op_args[9:13]  # delta_softplus, scale, keep_states, backend
    ctx.R, ctx.N = R, N
    return out, (u, x_dbl, w_x, w_dt, A, D, z, delta_bias, index, states, gate, y)


def _scan_backward(ctx, saved, dout, need) -> tuple:
    """Gradients of (u, w_x, w_dt, A, D, z, delta_bias) (None where ``need`` says no) from `_scan_forward`'s
    saved tensors; outside autocast."""
    u, x_dbl, w_x, w_dt, A, D, z, delta_bias, index, states, gate, y = saved
    delta_softplus, scale, _, backend = ctx.op_flags
    R, N = ctx.R, ctx.N
    dgate = None
    if gate is not None:  # the scan's dout is the gradient of its ungated output
        dout, dgate = gate_backward(dout, y, gate, need[5], _use_triton(backend, u))
        if dgate is not None and ctx.gate_dims == 4:
            dgate = dgate.unsqueeze(1)
    dt = x_dbl[:, :, :R]
    delta = _delta_into(x_dbl, w_dt, u, _use_triton(backend, u))  # recomputed, not kept
    du, ddelta, dA, dB, dC, dD, dz, ddelta_bias = _scan_bwd_impl(
        dout, None, u, delta, A, *_bc(x_dbl, R, N), D, z, delta_bias, index, states, delta_softplus, scale, backend
    )
    del delta
    # d x_dbl in x_dbl's layout: the dt rows straight from the matmul, then dB and dC
    dx_dbl = new_like_layout(u, tuple(x_dbl.shape), x_dbl.dtype)
    _bmm_into(w_dt.transpose(-1, -2), ddelta, dx_dbl[:, :, :R])
    dx_dbl[:, :, R:R + N].copy_(dB.squeeze(2))
    dx_dbl[:, :, R + N:].copy_(dC.squeeze(2))
    dw_dt = _weight_grad(ddelta, dt, w_dt.dtype) if need[2] else None
    del ddelta
    dw_x = _weight_grad(dx_dbl, u, w_x.dtype) if need[1] else None
    # du += w_x[k]^T d x_dbl[:, k]
    du = _bmm_into(w_x.transpose(-1, -2), dx_dbl, du, accumulate=True) if need[0] else None
    if gate is not None:
        dz = dgate
    return (du, dw_x, dw_dt, dA if need[3] else None, dD if need[4] else None, dz if need[5] else None,
            ddelta_bias if need[6] else None)


class _ProjectedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, w_x, w_dt, A, D, z, delta_bias, spec):
        backend = spec[4]
        # one matmul per direction (see `_bmm_into`), no autograd: nothing is kept;
        # in the inputs' dtype under autocast too, as the backward recomputes delta (outside autocast)
        fast = _use_triton(backend if backend is not None else default_backend(u.device), u)
        with torch.autocast(u.device.type, enabled=False):
            x_dbl, delta = _project_into(u, w_x, w_dt, fast)
        out, saved = _scan_forward(ctx, u, x_dbl, delta, w_x, w_dt, A, D, z, delta_bias, spec, ctx.needs_input_grad[5])
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    @once_differentiable  # its matmuls write into preallocated outputs (no graph of the gradient)
    def backward(ctx, dout):
        with torch.autocast(dout.device.type, enabled=False):  # a backward called inside autocast too
            return (*_scan_backward(ctx, ctx.saved_tensors, dout, ctx.needs_input_grad[:7]), None)


class _ConvProjectedScan(torch.autograd.Function):
    """`_ProjectedScan` over u = silu(depthwise conv of x) made with x_dbl and delta by one kernel
    (`triton_conv_proj`); the backward runs the projected scan's, then the conv op's from x (u is kept, as the
    projected scan keeps it; the conv keeps x, as the conv op does)."""

    @staticmethod
    def forward(ctx, x, taps, conv_bias, w_x, w_dt, A, D, z, delta_bias, spec):
        offsets, channel_major, scan_spec = spec
        u, x_dbl, delta = _conv_project_into(x, taps, conv_bias, offsets, w_x, w_dt, channel_major)
        out, saved = _scan_forward(ctx, u, x_dbl, delta, w_x, w_dt, A, D, z, delta_bias, scan_spec,
                                   ctx.needs_input_grad[7])
        ctx.save_for_backward(*saved, x, taps, conv_bias)
        ctx.offsets = list(offsets)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        saved = ctx.saved_tensors
        x, taps, conv_bias = saved[-3:]
        need = ctx.needs_input_grad
        need_u = need[0] or need[1] or need[2]
        with torch.autocast(dout.device.type, enabled=False):
            du, *grads = _scan_backward(ctx, saved[:-3], dout, (need_u, *need[3:9]))
            dx = dtaps = dbias = None
            if need_u:  # the conv op's backward: its output's gradient (batch, K, L, C) is du's transpose
                dx, dtaps, dbias = _conv_bwd_impl(du.transpose(2, 3), x, taps, conv_bias, ctx.offsets, True)
        return (dx if need[0] else None, dtaps if need[1] else None, dbias if need[2] and conv_bias is not None else None,
                *grads, None)


def projected_scan(
    u: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_proj_weight: torch.Tensor,
    A: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    *,
    delta_softplus: bool = False,
    orders: Sequence[Order] | None = None,
    grid: tuple[int, int] | None = None,
    combine: str = "sum",
    backend: str | None = None,
) -> torch.Tensor:
    """`selective_scan` with delta, B and C projected from u (see the module docstring).

    u: (batch, K, D, L), any strides; x_proj_weight (K, R + 2N, D) and dt_proj_weight (K, D, R) in u's
    dtype; A (K, D, N) or (D, N); D, delta_bias (K, D) or (D,); z (batch, K, D, L) or (batch, D, L);
    orders: K visiting orders (None: every direction in natural order). One group (B and C shared by
    the channels). Returns out (batch, D, L) as `selective_scan` does.
    """
    R, N = _check(u, x_proj_weight, dt_proj_weight, A)
    K = u.shape[1]
    if orders is None:
        orders = ["natural"] * K
    tensors = (u, x_proj_weight, dt_proj_weight, A, D, z, delta_bias)
    if not plain_eager(*tensors):
        delta, B, C = project(u, x_proj_weight, dt_proj_weight, N)
        return selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, orders=orders, grid=grid,
                              combine=combine, backend=backend)
    batch, _, dim, L = u.shape
    dev = u.device
    # shared parameters as expand views outside the Function: autograd sums their per-direction gradients
    A = _per_direction("A", A, K, (dim, N), "(D, N)", "(K, D, N)", dev)
    D = _per_direction("D", D, K, (dim,), "(D,)", "(K, D)", dev)
    delta_bias = _per_direction("delta_bias", delta_bias, K, (dim,), "(D,)", "(K, D)", dev)
    # z stays (batch, D, L) when shared: the Function gates the scan's output with it (see `gate`), or without a
    # backward hands it to the scan's forward kernels
    _per_direction("z", z, K, (batch, dim, L), "(batch, D, L)", "(batch, K, D, L)", dev)
    spec = (orders, grid, combine, delta_softplus, backend, backward_follows(*tensors))
    return _ProjectedScan.apply(u, x_proj_weight, dt_proj_weight, A, D, z, delta_bias, spec)


def projected_scan_directions(
    u: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_proj_weight: torch.Tensor,
    A: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    *,
    delta_softplus: bool = False,
    orders: Sequence[Order] | None = None,
    combine: str = "sum",
) -> torch.Tensor:
    """`projected_scan`'s directions not summed, for inference on the Triton backend: each direction's output, gated
    by z and scaled as ``combine`` scales it, as (batch, K, D, L) stored (batch, L, K, D), so that out.permute(0, 3,
    1, 2) viewed (batch x L, K x D) is one matrix: a consumer's matmul over it with the weight repeated K times sums
    the directions itself (Vim's out_proj; no pass that adds them). Same arguments as `projected_scan`; refused
    where a gradient would be recorded, or the tensors are not on the Triton backend's devices."""
    R, N = _check(u, x_proj_weight, dt_proj_weight, A)
    tensors = (u, x_proj_weight, dt_proj_weight, A, D, z, delta_bias)
    if backward_follows(*tensors):
        raise ValueError("projected_scan_directions: inference only; a gradient would be recorded (use projected_scan)")
    if not plain_eager(*tensors) or not _use_triton(default_backend(u.device), u):
        raise ValueError(f"projected_scan_directions: runs the Triton kernels only (plain tensors on CUDA, not "
                         f"{u.dtype} on {u.device} here); use projected_scan")
    with torch.autocast(u.device.type, enabled=False):
        x_dbl, delta = _project_into(u, x_proj_weight, dt_proj_weight, True)
        return _split_forward(u, x_dbl, delta, A, D, z, delta_bias, R, N, delta_softplus, orders, combine)


def _split_forward(u, x_dbl, delta, A, D, z, delta_bias, R, N, delta_softplus, orders, combine) -> torch.Tensor:
    """The scan of `projected_scan_directions` once u, x_dbl and delta are made."""
    if orders is None:
        orders = ["natural"] * u.shape[1]
    # (shared A, D, delta_bias: `prepare` gives them their direction axis, as no autograd node needs it first)
    op_args = prepare(u, delta, A, *_bc(x_dbl, R, N), D, z, delta_bias, delta_softplus, orders, None, combine,
                      "triton", grad=False)
    with on_device_of(u):
        return _tk().fwd.triton_forward(*op_args[:11], backward=False, split=True)[0]


def conv_scan_supported(x: torch.Tensor, K: int, dt_rank: int, N: int) -> bool:
    """Whether `conv_scan_directions` runs for token-major x (batch, L, C) of this dtype and device with K
    directions, dt rank R and N states (`triton_conv_proj.supports`; CUDA, or the interpreter)."""
    return (isinstance(x, torch.Tensor) and (x.is_cuda or interpreting())
            and _tk().conv_proj.supports(x, K, dt_rank, N))


def _check_conv(op: str, x, taps, conv_bias, offsets, x_proj_weight, dt_proj_weight, A) -> tuple[int, int, int]:
    """The conv forms' argument checks (see `conv_scan_directions`): K, R, N."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{op}: `x` has shape {got}, expected (batch, L, C)")
    dim = x.shape[2]
    if not isinstance(taps, torch.Tensor) or taps.dim() != 3 or taps.shape[1] != dim or taps.shape[2] < 1:
        got = tuple(taps.shape) if isinstance(taps, torch.Tensor) else type(taps).__name__
        raise ValueError(f"{op}: `taps` has shape {got}, expected (K, C={dim}, W)")
    K = taps.shape[0]
    if len(offsets) != K:
        raise ValueError(f"{op}: {len(offsets)} `offsets` for K={K} tap sets")
    if conv_bias is not None and (not isinstance(conv_bias, torch.Tensor) or tuple(conv_bias.shape) != (K, dim)):
        raise ValueError(f"{op}: `conv_bias` must be None or ({K}, {dim})")
    R, N = _check_weights(K, dim, x.dtype, x.device, "x", x_proj_weight, dt_proj_weight, A, op)
    if taps.device != x.device:
        raise ValueError(f"{op}: `taps` is on {taps.device}, expected x's device ({x.device})")
    return K, R, N


def _unsupported(op: str, x, K: int, R: int, N: int) -> str:
    conv_proj = _tk().conv_proj
    return (f"{op}: runs the Triton kernel only (plain tensors on CUDA of {conv_proj.DTYPES}, at most "
            f"{conv_proj.MAX_DIRECTIONS} directions, dt rank and 2N at most {conv_proj.MAX_ROWS}); got {x.dtype} on "
            f"{x.device}, K={K}, R={R}, N={N}")


def conv_scan_directions(
    x: torch.Tensor,
    taps: torch.Tensor,
    conv_bias: torch.Tensor | None,
    offsets: Sequence[int],
    x_proj_weight: torch.Tensor,
    dt_proj_weight: torch.Tensor,
    A: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    *,
    delta_softplus: bool = False,
    orders: Sequence[Order] | None = None,
    combine: str = "sum",
    channel_major: bool = True,
) -> torch.Tensor:
    """`projected_scan_directions` over u = silu(depthwise conv of x), with the conv and both projections in one
    kernel (`triton_conv_proj`): x (batch, L, C) token-major, any strides (a slice of in_proj's output); taps (K,
    C, W) and conv_bias (K, C) or None as `depthwise_conv1d` takes them with its K ``offsets``; u stored as that op
    stores it (``channel_major``: (K, C, batch, L), else token-major). The other arguments and the result as
    `projected_scan_directions`'s, for inference on the Triton backend (`conv_scan_supported`)."""
    op = "conv_scan_directions"
    K, R, N = _check_conv(op, x, taps, conv_bias, offsets, x_proj_weight, dt_proj_weight, A)
    tensors = (x, taps, conv_bias, x_proj_weight, dt_proj_weight, A, D, z, delta_bias)
    if backward_follows(*tensors):
        raise ValueError(f"{op}: inference only; a gradient would be recorded (use conv_projected_scan)")
    if not plain_eager(*tensors) or not conv_scan_supported(x, K, R, N):
        raise ValueError(_unsupported(op, x, K, R, N))
    with torch.autocast(x.device.type, enabled=False):
        u, x_dbl, delta = _conv_project_into(x, taps, conv_bias, offsets, x_proj_weight, dt_proj_weight, channel_major)
        return _split_forward(u, x_dbl, delta, A, D, z, delta_bias, R, N, delta_softplus, orders, combine)


def conv_projected_scan(
    x: torch.Tensor,
    taps: torch.Tensor,
    conv_bias: torch.Tensor | None,
    offsets: Sequence[int],
    x_proj_weight: torch.Tensor,
    dt_proj_weight: torch.Tensor,
    A: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    *,
    delta_softplus: bool = False,
    orders: Sequence[Order] | None = None,
    combine: str = "sum",
    channel_major: bool = True,
) -> torch.Tensor:
    """`projected_scan` over u = silu(depthwise conv of x) (the directions summed; forward and backward), the conv
    and both projections made by one kernel as in `conv_scan_directions` (same arguments): one autograd node whose
    backward is the projected scan's followed by the conv op's, recomputing delta and keeping u, x_dbl and x as
    those do. Plain tensors on the Triton backend's devices (`conv_scan_supported`)."""
    op = "conv_projected_scan"
    K, R, N = _check_conv(op, x, taps, conv_bias, offsets, x_proj_weight, dt_proj_weight, A)
    tensors = (x, taps, conv_bias, x_proj_weight, dt_proj_weight, A, D, z, delta_bias)
    if not plain_eager(*tensors) or not conv_scan_supported(x, K, R, N):
        raise ValueError(_unsupported(op, x, K, R, N))
    batch, L, dim = x.shape
    dev = x.device
    A = _per_direction("A", A, K, (dim, N), "(D, N)", "(K, D, N)", dev)
    D = _per_direction("D", D, K, (dim,), "(D,)", "(K, D)", dev)
    delta_bias = _per_direction("delta_bias", delta_bias, K, (dim,), "(D,)", "(K, D)", dev)
    _per_direction("z", z, K, (batch, dim, L), "(batch, D, L)", "(batch, K, D, L)", dev)
    if orders is None:
        orders = ["natural"] * K
    scan_spec = (orders, None, combine, delta_softplus, "triton", backward_follows(*tensors))
    return _ConvProjectedScan.apply(x, taps, conv_bias, x_proj_weight, dt_proj_weight, A, D, z, delta_bias,
                                    (tuple(offsets), channel_major, scan_spec))


def _conv_project_into(x, taps, conv_bias, offsets, w_x, w_dt, channel_major: bool):
    """u (batch, K, C, L) as the conv op stores it, x_dbl and delta in u's layout, from one launch of the
    conv-projection kernel."""
    batch, L, dim = x.shape
    K = taps.shape[0]
    u = new_conv_out(x, K, channel_major).transpose(2, 3)
    x_dbl = new_like_layout(u, (batch, K, w_x.shape[1], L), u.dtype)
    delta = new_like_layout(u, (batch, K, dim, L), u.dtype)
    with on_device_of(x):
        _tk().conv_proj.conv_project(x, taps, conv_bias, offsets, w_x, w_dt, u, x_dbl, delta)
    return u, x_dbl, delta


def scan_walks(batch: int, dim: int, N: int, L: int) -> bool:
    """Whether `projected_scan` on CUDA, with no gradient to compute, runs the walking forward when u is
    token-major (`Tiles.fwd_walk`): callers that can produce u in either layout pick token-major then."""
    from .triton_fwd import forward_walks

    return forward_walks(batch, dim, N, L)
