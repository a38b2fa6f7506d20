"""SS2D: VMamba's 2-D selective-scan mixer, four scan directions over an H x W feature map.

For x of shape (batch, H, W, d_model) and d_inner = ssm_ratio * d_model:

    x (, z)  = in_proj(x)                                   (z only with ``gate=True``, the v0 model)
    x        = silu(depthwise 3x3 conv(x))                  (channels first: (batch, d_inner, H, W))
    xs       = cross_scan_2d(x)                             (4 visiting orders: row-major, column-major,
                                                             and both reversed; (batch, 4, d_inner, L))
    dt,B,C_k = x_proj_weight[k] @ xs_k                      (widths dt_rank, d_state, d_state per direction)
    delta_k  = dt_projs_weight[k] @ dt_k                    (dt_projs_bias enters the scan as delta_bias)
    ys       = selective_scan(xs, delta, -exp(A_logs), B, C, Ds, delta_bias, softplus)
                                                            (the 4 directions stacked along channels,
                                                             B/C shared by each direction's channels)
    y        = cross_merge_2d(ys)                           (each direction back to natural order, summed)
    out      = out_proj(out_norm(y) (* silu(z)))

Parameter names and shapes follow the official implementation (MzeroMiko/VMamba, ``SS2D``), so its
state_dicts load unchanged: ``x_proj_weight (K, R+2N, d_inner)``, ``dt_projs_weight (K, d_inner, R)``,
``dt_projs_bias (K, d_inner)``, ``A_logs (K*d_inner, N)``, ``Ds (K*d_inner,)`` with K = 4.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from vssm.kernels import selective_scan
from vssm.kernels.eager import plain_eager
from vssm.kernels.env import switch
from vssm.kernels.selective_scan.direction_sum import add_direction_sum
from vssm.kernels.selective_scan.op import (
    _scan_bwd_impl,
    _scan_fwd_impl,
    _use_triton,
    backward_follows,
    prepare,
)
from vssm.norm import LayerNorm
from vssm.param_cache import derived
from vssm.ssm_init import init_ssm_, positive_int
from vssm.timm_glue import fx_leaf

__all__ = ["SS2D", "cross_merge_2d", "cross_scan_2d", "cross_selective_scan_2d"]

DIRECTIONS = 4
ORDERS = ["rows", "cols", "rows_reverse", "cols_reverse"]  # the visiting order of each direction k


def cross_scan_2d(x: torch.Tensor) -> torch.Tensor:
    """(batch, C, H, W) -> (batch, 4, C, H*W): the tokens in row-major, column-major and both reversed orders."""
    batch, channels, height, width = x.shape
    # one strided copy per order into a preallocated buffer (works for channels-last inputs too)
    xs = x.new_empty(batch, DIRECTIONS, channels, height * width)
    xs[:, 0].view(batch, channels, height, width).copy_(x)
    xs[:, 1].view(batch, channels, width, height).copy_(x.transpose(2, 3))
    xs[:, 2:] = xs[:, :2].flip(-1)
    return xs


def cross_merge_2d(ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(batch, 4, C, H*W) in the orders of `cross_scan_2d` -> (batch, C, H, W): back to natural order, summed."""
    batch, _, channels, _ = ys.shape
    y = ys[:, :2] + ys[:, 2:].flip(-1)  # undo the reversals: (batch, 2, C, L) in row- and column-major
    rows = y[:, 0].reshape(batch, channels, height, width)
    cols = y[:, 1].reshape(batch, channels, width, height).transpose(2, 3)
    return rows + cols


def cross_selective_scan_2d(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
) -> torch.Tensor:
    """The SSM core of SS2D: (batch, D, H, W) -> (batch, D, H, W), all four directions scanned and summed.

    The composed path (cross-scan copy, one call over the stacked directions, cross-merge): the oracle
    `SS2D.core` is tested against.
    Shapes: x_proj_weight (K, R+2N, D), dt_projs_weight (K, D, R), dt_projs_bias (K, D), A_logs (K*D, N),
    Ds (K*D,), K = 4.
    """
    batch, dim, height, width = x.shape
    K, _, R = dt_projs_weight.shape
    N = A_logs.shape[1]
    L = height * width
    xs = cross_scan_2d(x).reshape(batch, K * dim, L)
    # per-direction projections as grouped 1x1 convs: (batch, K*D, L) in and out, no transposes
    x_dbl = F.conv1d(xs, x_proj_weight.reshape(-1, dim, 1), groups=K).view(batch, K, R + 2 * N, L)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = F.conv1d(dts.reshape(batch, K * R, L), dt_projs_weight.reshape(K * dim, R, 1), groups=K)
    ys = selective_scan(
        xs,
        dts,
        -torch.exp(A_logs.float()),
        Bs.contiguous(),
        Cs.contiguous(),
        Ds.float(),
        delta_bias=dt_projs_bias.reshape(-1).float(),
        delta_softplus=True,
    )
    return cross_merge_2d(ys.view(batch, K, dim, L), height, width)


def _decay(A_logs: torch.Tensor, K: int, N: int) -> torch.Tensor:
    """A = -exp(A_logs) as the scan takes it, (K, D, N) in float32."""
    return -torch.exp(A_logs.float()).view(K, -1, N)


def _core_tensors(tokens, w_x, w_dt, A_logs, Ds, dt_bias, K: int, R: int, N: int, A=None):
    """The scan's arguments of `SS2D.core` from the tokens (batch, L, D): x_dbl (batch, L, K, R + 2N) from one
    matmul over the stacked x_proj weights (K * (R + 2N), D), delta (batch, K, D, L) token-major from a batched
    matmul per direction, A = -exp(A_logs) (K, D, N) unless given, B and C views (batch, K, 1, N, L) of x_dbl."""
    batch, L, D = tokens.shape
    x_dbl = F.linear(tokens, w_x).view(batch, L, K, R + 2 * N)
    dts, B, C = torch.split(x_dbl, [R, N, N], dim=-1)
    # (batch, K, L, R) @ (K, R, D): delta of direction k, token-major (a matmul that fvcore counts exactly)
    delta = torch.matmul(dts.transpose(1, 2), w_dt.transpose(1, 2)).transpose(2, 3)
    if A is None:
        A = _decay(A_logs, K, N)
    return (tokens.transpose(1, 2), delta, A, B.permute(0, 2, 3, 1).unsqueeze(2), C.permute(0, 2, 3, 1).unsqueeze(2),
            Ds.float().view(K, D), dt_bias.float(), x_dbl)


class _Core(torch.autograd.Function):
    """`SS2D.core`'s computation as one autograd node (plain eager mode, `SS2D.function_core`): the projections,
    A = -exp(A_logs) and the views between them run without autograd, so the backward runs one node instead of
    ~20 (the split, transposes, permutes, views, exp and neg of the composed graph), each a few tens of us of
    host time in a training step bound by the host. The same tensors reach the scan (and delta is kept, as the
    composed graph keeps it); the backward does the matmuls autograd would: d x_dbl from the scan's dB / dC and
    d delta, then the x_proj and dt_proj products. Weights come in the tokens' dtype (the caller casts them, as
    autocast would); inside, autocast is off."""

    @staticmethod
    def forward(ctx, tokens, w_x, w_dt, A_logs, Ds, dt_bias, spec, A=None):
        # A: -exp(A_logs) built by the caller (reused between inference calls, `vssm.param_cache`), or None
        K, R, N, grid, grad = spec
        with torch.autocast(tokens.device.type, enabled=False):
            u, delta, A, B, C, Dv, bias, x_dbl = _core_tensors(tokens, w_x, w_dt, A_logs, Ds, dt_bias, K, R, N, A)
            op_args = prepare(u, delta, A, B, C, Dv, None, bias, True, ORDERS, grid, "sum", None, grad=grad)
            out, _, states = _scan_fwd_impl(*op_args)
        ctx.save_for_backward(tokens, w_x, w_dt, x_dbl, *op_args[:9], states)
        ctx.op_flags = op_args[9:13]  # delta_softplus, scale, keep_states, backend
        ctx.spec = spec
        return out  # (batch, D, L), token-major

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        tokens, w_x, w_dt, x_dbl, u, delta, A, B, C, Dv, _, bias, index, states = ctx.saved_tensors
        softplus, scale, _, backend = ctx.op_flags
        K, R, N, _, _ = ctx.spec
        batch, L, D = tokens.shape
        need = ctx.needs_input_grad
        with torch.autocast(tokens.device.type, enabled=False):
            du, ddelta, dA, dB, dC, dD, _, dbias = _scan_bwd_impl(
                dout, None, u, delta, A, B, C, Dv, None, bias, index, states, softplus, scale, backend)
            # d x_dbl (batch, L, K, R + 2N): the dt columns from d delta, then dB and dC
            dx = x_dbl.new_empty(x_dbl.shape)
            dts = x_dbl[..., :R].transpose(1, 2)  # (batch, K, L, R)
            g = ddelta.transpose(2, 3)  # (batch, K, L, D): the gradient of dts @ w_dt^T
            dx[..., :R].copy_(torch.matmul(g, w_dt).transpose(1, 2))
            dx[..., R:R + N].copy_(dB.squeeze(2).permute(0, 3, 1, 2))
            dx[..., R + N:].copy_(dC.squeeze(2).permute(0, 3, 1, 2))
            dw_dt = torch.matmul(g.transpose(2, 3), dts).sum(0) if need[2] else None  # (K, D, R)
            dx2 = dx.view(batch * L, K * (R + 2 * N))
            dw_x = dx2.t().mm(tokens.reshape(batch * L, D)) if need[1] else None
            dtok = None
            if need[0]:
                dtok = dx2.mm(w_x).view(batch, L, D)
                # the scan's u: the tokens shared by the four directions, their gradients added in one pass
                add_direction_sum(dtok.transpose(1, 2), du, _use_triton(backend, du))
            dA_logs = (dA * A).view(K * D, N) if need[3] else None  # d(-exp(A_logs)) = dA * A
            dDs = dD.reshape(K * D) if need[4] else None
            dbias_ = dbias if need[5] else None
        return dtok, dw_x, dw_dt, dA_logs, dDs, dbias_, None, None


def _function_core(module) -> bool:
    own = getattr(module, "function_core", None)  # modules pickled before the attribute existed: None
    if own is not None:
        return bool(own)
    return switch("VSSM_SS2D_FUNCTION", "one autograd node", "the composed core")


@fx_leaf
class SS2D(nn.Module):
    """VMamba's four-direction 2-D selective-scan mixer on channel-last maps (batch, H, W, d_model).

    Args:
        d_model: width of the input and output.
        d_state: SSM state size N per channel (1 in the VMamba v2 models, 16 in v0).
        ssm_ratio: inner width d_inner = int(ssm_ratio * d_model).
        dt_rank: rank of the delta projection; ``"auto"`` = ceil(d_model / 16).
        d_conv: kernel of the depthwise conv before the scan; 1 or less disables it (as the official code).
        conv_bias: bias in the depthwise conv; bias: bias in in_proj / out_proj.
        gate: the v0 z gate: in_proj also makes z and the output is ``out_norm(y) * silu(z)``
            (forward type ``v0``); False is the ``_noz`` forward types of the v2 models.
        dropout: dropout after out_proj.
        dt_min, dt_max, dt_init_floor, dt_scale: softplus(dt_projs_bias) starts log-uniform in
            [dt_min, dt_max] (clamped below at dt_init_floor); dt_projs_weight ~ U(+-dt_scale * R^-0.5).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = True,
        bias: bool = False,
        gate: bool = False,
        dropout: float = 0.0,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.d_model = positive_int("SS2D", "d_model", d_model)
        self.d_state = positive_int("SS2D", "d_state", d_state)
        if isinstance(ssm_ratio, bool) or not isinstance(ssm_ratio, (int, float)) or ssm_ratio <= 0:
            raise ValueError(f"SS2D: `ssm_ratio` must be a positive number, got {ssm_ratio!r}")
        self.d_inner = int(ssm_ratio * d_model)
        if self.d_inner < 1:
            raise ValueError(f"SS2D: ssm_ratio * d_model = {ssm_ratio} * {d_model} must be >= 1")
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else positive_int("SS2D", "dt_rank", dt_rank)
        if isinstance(d_conv, bool) or not isinstance(d_conv, int):
            raise ValueError(f"SS2D: `d_conv` must be an int, got {d_conv!r}")
        if d_conv > 1 and d_conv % 2 == 0:
            raise ValueError(f"SS2D: `d_conv` must be odd so the conv keeps H x W, got {d_conv}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"SS2D: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        if not isinstance(gate, bool):
            raise TypeError(f"SS2D: `gate` must be a bool, got {type(gate).__name__}")
        self.gate = gate
        self.composed = False  # True: cross_scan_2d / one call / cross_merge_2d copies (the test oracle)
        # True: `core` runs as one autograd node in plain eager mode (`_Core`); None: $VSSM_SS2D_FUNCTION (1 / 0,
        # default 1: VMamba-T / -S training steps 9% / 8% faster on an H200, bound by the host, stop 24)
        self.function_core: bool | None = None
        self.dt_min, self.dt_max, self.dt_init_floor, self.dt_scale = dt_min, dt_max, dt_init_floor, dt_scale
        K, D, R, N = DIRECTIONS, self.d_inner, self.dt_rank, self.d_state

        self.in_proj = nn.Linear(d_model, 2 * D if gate else D, bias=bias, **dd)
        self.act = nn.SiLU()
        self.conv2d = (
            nn.Conv2d(D, D, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=D, bias=conv_bias, **dd)
            if d_conv > 1
            else None
        )
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, D, **dd))
        self.dt_projs_weight = nn.Parameter(torch.empty(K, D, R, **dd))
        self.dt_projs_bias = nn.Parameter(torch.empty(K, D, **dd))
        # A_logs and Ds stay float32 whatever `dtype` is: the scan decays exp(dt * A) in float32.
        self.A_logs = nn.Parameter(torch.empty(K * D, N, device=device, dtype=torch.float32))
        self.Ds = nn.Parameter(torch.empty(K * D, device=device, dtype=torch.float32))
        # read by out_proj alone without the gate: under autocast it may write the Linear's dtype
        self.out_norm = LayerNorm(D, lower_precision_output=not gate, **dd)
        self.out_proj = nn.Linear(D, d_model, bias=bias, **dd)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """The official init of the SSM parameters (the projections and norms are left to the model):
        x_proj_weight as nn.Linear's default, dt_projs_weight ~ U(+-dt_scale * R^-0.5), softplus(dt bias)
        ~ logU[dt_min, dt_max], A_logs = log(1..N) (S4D-real), Ds = 1. Marks A_logs/Ds for no weight decay."""
        bound = 1.0 / math.sqrt(self.d_inner)  # nn.Linear's kaiming_uniform(a=sqrt(5)) bound
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        init_ssm_(
            self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds, dt_rank=self.dt_rank,
            dt_min=self.dt_min, dt_max=self.dt_max, dt_init_floor=self.dt_init_floor, dt_scale=self.dt_scale,
        )

    def core(self, x: torch.Tensor) -> torch.Tensor:
        """The SSM part on channel-last (batch, H, W, D) -> (batch, H, W, D), all four directions in one
        `selective_scan` call: x_proj / dt_projs run once over the tokens in natural order (a per-token
        map commutes with any visiting order), the kernel visits each direction's order, and its
        output is already summed in natural order. Nothing is transposed or copied.
        With `function_core` (plain eager mode only) the same computation runs as one autograd node (`_Core`)."""
        batch, H, W, D = x.shape
        K, R, N, L = DIRECTIONS, self.dt_rank, self.d_state, H * W
        tokens = x.reshape(batch, L, D)
        w_x = self.x_proj_weight.reshape(K * (R + 2 * N), D)
        params = (w_x, self.dt_projs_weight, self.A_logs, self.Ds, self.dt_projs_bias)
        # A and, under autocast, the weights as the matmuls take them: built once for inference (`vssm.param_cache`)
        def decay():
            return derived(self, "A", [self.A_logs], lambda: _decay(self.A_logs, K, N))

        if _function_core(self) and plain_eager(tokens, *params):
            w_dt = self.dt_projs_weight
            if torch.is_autocast_enabled(x.device.type):  # what autocast gives the two matmuls
                dtype = torch.get_autocast_dtype(x.device.type)
                tokens = tokens.to(dtype)
                w_x, w_dt = derived(self, ("weights", dtype), [self.x_proj_weight, w_dt],
                                    lambda: (w_x.to(dtype), w_dt.to(dtype)))
            grad = backward_follows(tokens, *params)
            spec = (K, R, N, (int(H), int(W)), grad)
            # with a backward to follow, A is built inside the node (no exp / neg nodes in the graph)
            y = _Core.apply(tokens, w_x, w_dt, self.A_logs, self.Ds, self.dt_projs_bias, spec,
                            None if grad else decay())
            return y.transpose(1, 2).reshape(batch, H, W, D)
        u, delta, A, B, C, Dv, bias, _ = _core_tensors(tokens, w_x, self.dt_projs_weight, self.A_logs, self.Ds,
                                                       self.dt_projs_bias, K, R, N, decay())
        y = selective_scan(
            u, delta, A, B, C, Dv,
            delta_bias=bias,
            delta_softplus=True,
            orders=ORDERS,
            grid=(int(H), int(W)),  # plain ints under torch.jit.trace (fvcore) too
        )
        return y.transpose(1, 2).reshape(batch, H, W, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, H, W, d_model) -> (batch, H, W, d_model)."""
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"SS2D: input has shape {tuple(x.shape)}, expected (batch, H, W, d_model={self.d_model})"
            )
        x = self.in_proj(x)
        if self.gate:
            x, z = x.chunk(2, dim=-1)
        x = x.permute(0, 3, 1, 2)  # a channels-last NCHW view: the conv keeps that memory format
        if self.conv2d is not None:
            x = self.conv2d(x)
        x = self.act(x).permute(0, 2, 3, 1)
        if self.composed:
            y = cross_selective_scan_2d(
                x.permute(0, 3, 1, 2), self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias, self.A_logs,
                self.Ds,
            ).permute(0, 2, 3, 1)
        else:
            y = self.core(x)
        y = self.out_norm(y)
        if self.gate:
            y = y * F.silu(z)
        return self.dropout(self.out_proj(y))

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
            f"directions={DIRECTIONS}, gate={self.gate}"
        )
