"""The Mamba-1 mixer (selective SSM block) and Vim's bidirectional variant, on `vssm.kernels.selective_scan`.

One branch of the mixer, for x of shape (batch, L, d_model) and E = expand * d_model:

    x, z   = in_proj(x)                                  (two halves of width E)
    x      = silu(causal depthwise conv1d(x))            (kernel d_conv, along L)
    dt,B,C = x_proj(x)                                   (widths dt_rank, d_state, d_state)
    delta  = dt_proj.weight @ dt                         (the bias enters the scan as delta_bias)
    y      = selective_scan(x, delta, -exp(A_log), B, C, D, z, delta_bias, softplus)
    out    = out_proj(y)

``bidirectional=True`` is Vim's "bimamba v2": the in_proj output (x and z) is shared, and a second
branch with its own conv1d_b / x_proj_b / dt_proj_b / A_b_log / D_b runs over the reversed sequence;
its output is reversed back and averaged with the forward branch before out_proj. Parameter names
match the official implementations, so their state_dicts load unchanged.
"""

from __future__ import annotations

import functools
import math
import weakref
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vssm import param_cache
from vssm.kernels import replay, selective_scan
from vssm.kernels.conv1d import depthwise_conv1d, has_fast_kernel
from vssm.kernels.eager import plain_eager
from vssm.kernels.env import interpreting, switch
from vssm.kernels.selective_scan.op import backward_follows, default_backend
from vssm.kernels.selective_scan.projected import (
    conv_projected_scan,
    conv_scan_directions,
    conv_scan_supported,
    projected_scan,
    projected_scan_directions,
    scan_walks,
)
from vssm.param_cache import derived
from vssm.ssm_init import init_ssm_, positive_int, scan_param
from vssm.timm_glue import fx_leaf

__all__ = ["Mamba"]


_PER_DIRECTION = 7  # conv weight, conv bias, x_proj weight, dt_proj weight, dt_proj bias, A_log, D
_SOURCE = (0, 1, 5, 6, 4, 2, 3)  # per `stack_directions` result (taps, conv bias, A, D, delta_bias, w_x, w_dt): its input
_TAPS, _A_LOG = 0, 5  # the inputs whose results are more than a stack (the taps' mirror, A = -exp(A_log))


def stack_directions(params: Sequence[torch.Tensor | None], tokens: bool, proj_dtype: torch.dtype | None) -> tuple:
    """The fused path's stacked parameters from each direction's (`Mamba._direction_inputs`): conv taps (K, E, W)
    with direction 1's mirrored (Vim's backward branch is a causal conv over the reversed sequence), conv bias
    (K, E) or None, A = -exp(A_log) (K, E, N) (stored with E contiguous when ``tokens``), D and delta_bias (K, E) in
    the scan's dtype (`scan_param`), and with ``proj_dtype`` the x_proj (K, R + 2N, E) and dt_proj (K, E, R)
    weights cast to it (else None). Plain torch ops: autograd records each one where it records."""
    groups = [params[i:i + _PER_DIRECTION] for i in range(0, len(params), _PER_DIRECTION)]
    taps = torch.stack([g[0][:, 0] if k == 0 else g[0][:, 0].flip(-1) for k, g in enumerate(groups)])
    conv_bias = torch.stack([g[1] for g in groups]) if groups[0][1] is not None else None
    D = torch.stack([scan_param(g[6]) for g in groups])
    delta_bias = torch.stack([scan_param(g[4]) for g in groups])
    A_logs = [scan_param(g[5]) for g in groups]
    if tokens:
        A = -torch.exp(torch.stack([a.t() for a in A_logs])).transpose(1, 2)  # (K, E, N), E contiguous
    else:
        A = -torch.exp(torch.stack(A_logs))
    if proj_dtype is None:
        return taps, conv_bias, A, D, delta_bias, None, None
    w_x = torch.stack([g[2] for g in groups]).to(proj_dtype)
    w_dt = torch.stack([g[3] for g in groups]).to(proj_dtype)
    return taps, conv_bias, A, D, delta_bias, w_x, w_dt


@functools.cache
def _packer():
    """`kernels.selective_scan.triton_pack`, imported at the first training step on a kernel device; None where
    Triton does not import (the torch ops stack then)."""
    try:
        from vssm.kernels.selective_scan import triton_pack
    except ImportError:
        return None
    return triton_pack


def _stack_flat(params: Sequence[torch.Tensor | None], proj_dtype: torch.dtype | None) -> tuple | None:
    """`stack_directions(params, False, proj_dtype)` in five launches (direction 1's mirror, one concatenation, exp,
    its negation and the weights' cast) where the stacking takes eleven: the results are views of one buffer (one
    of proj_dtype for the weights). For `_DirectionParams.forward`, where no autograd records: in training the
    stacking's launches are host time the forward waits on (Vim-S: the forward is bound by the host). None where
    the parameters are not all of one float32 / float64 dtype and contiguous (then `stack_directions`)."""
    first = params[0]
    dtype = first.dtype
    if dtype not in (torch.float32, torch.float64) or any(
            p is not None and (p.dtype != dtype or not p.is_contiguous()) for p in params):
        return None
    groups = [params[i:i + _PER_DIRECTION] for i in range(0, len(params), _PER_DIRECTION)]
    K, (E, _, W) = len(groups), first.shape
    N, has_bias = groups[0][5].shape[-1], groups[0][1] is not None
    # one buffer: taps (K, E, W), conv bias (K, E), D (K, E), delta_bias (K, E), A (K, E, N), then the x_proj and
    # dt_proj weights (cast to proj_dtype afterwards)
    order = [0] + ([1] if has_bias else []) + [6, 4, 5] + ([2, 3] if proj_dtype is not None else [])
    pieces = [(g[0].flip(-1) if k else g[0]).view(-1) if j == 0 else g[j].view(-1)
              for j in order for k, g in enumerate(groups)]
    flat = torch.cat(pieces)
    sizes = [K * groups[0][j].numel() for j in order]
    parts = dict(zip(order, flat.split(sizes)))
    taps = parts[0].view(K, E, W)
    conv_bias = parts[1].view(K, E) if has_bias else None
    D, delta_bias = parts[6].view(K, E), parts[4].view(K, E)
    A = parts[5].view(K, E, N).exp_().neg_()
    if proj_dtype is None:
        return taps, conv_bias, A, D, delta_bias, None, None
    n_x = sizes[-2]
    w = flat[-(n_x + sizes[-1]):]
    w = w if proj_dtype == dtype else w.to(proj_dtype)
    w_x = w[:n_x].view(K, *groups[0][2].shape)
    w_dt = w[n_x:].view(K, *groups[0][3].shape)
    return taps, conv_bias, A, D, delta_bias, w_x, w_dt


class _DirectionParams(torch.autograd.Function):
    """`stack_directions` as one autograd node. Recorded op by op it is 12-14 nodes per Vim layer (seven stacks, the
    taps' selects and mirror, exp, neg, the weights' casts), each made in the forward and run in the backward of
    every training step, several with a kernel of their own; here the backward hands each parameter its slice of the
    stacked gradients (mirrored back, times A for A_log as d(-exp(a))/da = -exp(a), cast to the parameter's dtype).

    The forward builds them in one launch on CUDA (`triton_pack`), else in five (`_stack_flat`): the outputs are then
    views of one buffer (two with cast weights), which autograd refuses to let anyone write in place. They are read
    only (the conv op and the projected scan), as `vssm.param_cache` asks of what it returns."""

    @staticmethod
    def forward(ctx, tokens, proj_dtype, *params):
        outs = None
        if not tokens:  # one launch on the kernels' devices, else five (`_stack_flat`), else the stacking
            packer = _packer() if params[0].is_cuda or interpreting() else None
            if packer is not None:
                outs = packer.pack_directions(params, proj_dtype)
            if outs is None:
                outs = _stack_flat(params, proj_dtype)
        if outs is None:
            outs = stack_directions(params, tokens, proj_dtype)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(outs[2])
        ctx.dtypes = [params[j].dtype if params[j] is not None else None for j in _SOURCE]  # per result
        # a result whose parameters all have requires_grad off (frozen) is a constant, as when recorded op by op:
        # its consumers then compute no gradient for it
        need = ctx.needs_input_grad[2:]
        ctx.mark_non_differentiable(*[o for j, o in zip(_SOURCE, outs)
                                      if o is not None and not any(need[j::_PER_DIRECTION])])
        return outs

    @staticmethod
    def backward(ctx, *grads):
        # differentiable ops only (slices, flip, the product with A, casts): with create_graph the second derivatives
        # go through them, as through the recorded stacking
        (A,) = ctx.saved_tensors
        need = ctx.needs_input_grad[2:]
        out: list[torch.Tensor | None] = [None] * len(need)
        for j, g, dtype in zip(_SOURCE, grads, ctx.dtypes):
            if g is None:
                continue
            if j == _A_LOG:
                g = g * A
            g = g if g.dtype == dtype else g.to(dtype)  # once for every direction (autograd casts a slice whose parameter differs)
            for k, i in enumerate(range(j, len(need), _PER_DIRECTION)):
                if need[i]:
                    # the taps: the (E, 1, W) weight's slice, direction 1's mirrored back
                    out[i] = (g[k] if k == 0 else g[k].flip(-1)).unsqueeze(1) if j == _TAPS else g[k]
        return (None, None, *out)


# Without a gradient on CUDA, `Mamba.forward(x, residual)` sums the directions, applies out_proj and adds the residual in
# one matmul (`Mamba._residual_out`); False: the directions' sum, out_proj and the add as three launches
FUSED_RESIDUAL = True
# Where the scan's forward runs its chunk kernel (not the walk): training, and inference on long sequences or small
# batches, the conv, x_proj and dt_proj in one kernel (`conv_scan_directions` for inference with u and delta
# token-major, `conv_projected_scan` with a backward, u channel-major as the backward's kernels read it); False: the
# conv op, then the projections (three launches). H200, bf16, Vim-Ti at 1248 (batch 8), one process alternating
# (docs/bench/h200-2026-12-01-s32, call 3): GPU time per step 20.03 -> 18.70 ms (the scan's chunk kernel 13.75 -> 12.29
# on token-major u / delta, the three launches' 3.25 -> 3.43), 253 -> 181 launches; Vim-S training 1608 -> 1536
# launches per step (NOTES.md "Stop 32"). Where the forward walks (batch 128 at 224, bound by the GPU) the kernel
# measured slower than the three launches (Vim-S: 4.49 against 4.19 ms per step)
FUSED_CONV_PROJECT = True
# Inference with the residual fused (`Mamba._fused_residual`): the mixer's scan region replayed from a launch plan
# recorded per input layout (`Mamba._mix_planned`, `vssm.kernels.replay`); False (or VSSM_LAUNCH_PLANS=0): every call
# runs it through the op's checks and launch wrappers
LAUNCH_PLANS = True
_MAX_PLANS = 8  # per module
# module -> {key: (stamp, plan or None, why refused, the parameters kept)}
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BRANCH_NAMES = (("conv1d", "x_proj", "dt_proj", "A_log", "D"), ("conv1d_b", "x_proj_b", "dt_proj_b", "A_b_log", "D_b"))


def _split_in_proj(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and z (batch, E, L): views of the token-major in_proj output (the scan reads them through strides), split
    before the transpose: their gradients arrive token-major and join along channels without a copy."""
    x, z = h.chunk(2, dim=-1)
    return x.transpose(1, 2), z.transpose(1, 2)


# torch.addmm(..., out_dtype=float32) takes a float32 input with half matrices (torch 2.11 on CUDA does; older versions
# and the CPU refuse): set False at the first refusal
_ADDMM_OUT_DTYPE = True


@fx_leaf
class Mamba(nn.Module):
    """Mamba-1 mixer; with ``bidirectional=True`` Vim's two-direction mixer (bimamba v2, outputs averaged).

    Args:
        d_model: width of the input and output tokens.
        d_state: SSM state size N per channel.
        d_conv: kernel size of the causal depthwise conv.
        expand: inner width E = expand * d_model.
        dt_rank: rank of the delta projection; ``"auto"`` = ceil(d_model / 16).
        dt_min, dt_max, dt_init_floor: softplus(dt_proj.bias) starts log-uniform in [dt_min, dt_max],
            clamped below at dt_init_floor.
        conv_bias: bias in the depthwise conv(s); bias: bias in in_proj / out_proj.
        bidirectional: add the backward branch (``*_b`` parameters) over the reversed sequence.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int | float = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.d_model = positive_int("Mamba", "d_model", d_model)
        self.d_state = positive_int("Mamba", "d_state", d_state)
        self.d_conv = positive_int("Mamba", "d_conv", d_conv)
        if isinstance(expand, bool) or not isinstance(expand, (int, float)) or expand <= 0:
            raise ValueError(f"Mamba: `expand` must be a positive number, got {expand!r}")
        self.expand = expand
        self.d_inner = int(expand * d_model)
        if self.d_inner < 1:
            raise ValueError(f"Mamba: expand * d_model = {expand} * {d_model} must be >= 1")
        if dt_rank == "auto":
            self.dt_rank = math.ceil(d_model / 16)
        else:
            self.dt_rank = positive_int("Mamba", "dt_rank", dt_rank)
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"Mamba: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.dt_min, self.dt_max, self.dt_init_floor = dt_min, dt_max, dt_init_floor
        if not isinstance(bidirectional, bool):
            raise TypeError(f"Mamba: `bidirectional` must be a bool, got {type(bidirectional).__name__}")
        self.bidirectional = bidirectional
        self.composed = False  # True: the per-direction calls over flipped copies (the test oracle)

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **dd)
        self.conv1d, self.x_proj, self.dt_proj = self._branch_modules(conv_bias, dd)
        # A_log and D stay float32 whatever `dtype` is: the scan decays exp(dt * A) in float32.
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(self.d_inner, device=device, dtype=torch.float32))
        if bidirectional:
            self.conv1d_b, self.x_proj_b, self.dt_proj_b = self._branch_modules(conv_bias, dd)
            self.A_b_log = nn.Parameter(
                torch.empty(self.d_inner, d_state, device=device, dtype=torch.float32)
            )
            self.D_b = nn.Parameter(torch.empty(self.d_inner, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **dd)
        self.reset_ssm_parameters()

    def _branch_modules(self, conv_bias: bool, dd: dict) -> tuple[nn.Conv1d, nn.Linear, nn.Linear]:
        conv = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            kernel_size=self.d_conv,
            groups=self.d_inner,
            padding=self.d_conv - 1,
            bias=conv_bias,
            **dd,
        )
        x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False, **dd)
        dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **dd)
        return conv, x_proj, dt_proj

    def _branches(self) -> list[tuple[nn.Conv1d, nn.Linear, nn.Linear, nn.Parameter, nn.Parameter]]:
        branches = [(self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)]
        if self.bidirectional:
            branches.append((self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b))
        return branches

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """The official SSM init: dt_proj uniform(+-dt_rank^-0.5), softplus(dt bias) ~ logU[dt_min, dt_max],
        A_log = log(1..N) (S4D-real), D = 1. Marks A_log/D (no weight decay) and dt bias (keep on re-init)."""
        for _, _, dt_proj, A_log, D in self._branches():
            init_ssm_(
                dt_proj.weight, dt_proj.bias, A_log, D, dt_rank=self.dt_rank, dt_min=self.dt_min,
                dt_max=self.dt_max, dt_init_floor=self.dt_init_floor,
            )

    def _scan_branch(self, x: torch.Tensor, z: torch.Tensor, branch) -> torch.Tensor:
        """One direction of the composed path: conv + SSM over x, gated by z; (batch, E, L) in scan order."""
        conv, x_proj, dt_proj, A_log, D = branch
        L = x.shape[-1]
        x = F.silu(conv(x)[..., :L])
        dt, B, C = torch.split(x_proj(x.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)
        return selective_scan(
            x.contiguous(),
            delta.contiguous(),
            -torch.exp(scan_param(A_log)),
            B.transpose(1, 2).contiguous(),
            C.transpose(1, 2).contiguous(),
            scan_param(D),
            z.contiguous(),
            delta_bias=scan_param(dt_proj.bias),
            delta_softplus=True,
        )

    def mix_composed(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """All directions as separate calls over flipped copies: x, z, result (batch, E, L).

        The reference the fused `mix` is tested against (and what the official code computes)."""
        branches = self._branches()
        y = self._scan_branch(x, z, branches[0])
        if self.bidirectional:
            y_b = self._scan_branch(x.flip(-1), z.flip(-1), branches[1]).flip(-1)
            y = (y + y_b) / 2
        return y

    def _conv(self, x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """silu(depthwise conv) of every direction, in natural token order: (batch, K, E, L) (a view, token-major
        in memory); taps (K, E, d_conv) and bias (K, E) or None as `_direction_params` gives them.

        The backward branch's causal conv over the reversed sequence is an anti-causal conv with mirrored
        taps over the natural one, so both run as one depthwise conv over x stacked twice along channels
        (direction-major) and padded on both sides; the forward direction reads its outputs from the left
        end, the backward from the right. The conv runs as a channels-last 2-D conv over token-major x:
        oneDNN's depthwise kernels are ~10-20x slower on channel-major 1-D input, or with two outputs per
        input channel, on a CPU.
        """
        E, K_conv, L = self.d_inner, self.d_conv, x.shape[-1]
        K = taps.shape[0]
        if torch.compiler.is_compiling():  # tracing (torch.compile, torch.export, ONNX): channel-major 1-D convs,
            # which the ONNX exporter translates correctly (it mistranslates the channels-last views below)
            if K == 1:
                return F.silu(self.conv1d(x)[..., :L]).unsqueeze(1)
            weight = taps.transpose(0, 1).reshape(2 * E, 1, K_conv)
            bias = bias.transpose(0, 1).reshape(2 * E) if bias is not None else None
            y = F.silu(F.conv1d(x, weight, bias, padding=K_conv - 1, groups=E)).contiguous()
            Lp = L + K_conv - 1
            # u[b, k, e, t] = y[b, 2e + k, t + k (K_conv - 1)]
            return y.as_strided((y.shape[0], 2, E, L), (2 * E * Lp, Lp + K_conv - 1, 2 * Lp, 1))
        xt = x.transpose(1, 2)  # (batch, L, E)
        if K > 1:
            xt = torch.cat([xt] * K, dim=-1)  # (batch, L, K E), direction-major channels
        xt = xt.unsqueeze(1).permute(0, 3, 1, 2)  # (batch, K E, 1, L), channels-last
        y = F.conv2d(xt, taps.reshape(K * E, 1, 1, K_conv), None if bias is None else bias.reshape(K * E),
                     padding=(0, K_conv - 1), groups=K * E)
        # (batch, K E, 1, Lp) stored (batch, Lp, K E); contiguous() is a no-op unless the conv picked another layout.
        # without autograd, silu in place: a fresh output of this size costs more than the conv on a CPU
        y = F.silu(y, inplace=not torch.is_grad_enabled()).contiguous(memory_format=torch.channels_last)
        if K == 1:
            return y[:, :, 0, :L].unsqueeze(1)
        Lp = L + K_conv - 1
        # u[b, k, e, t] = y[b, k E + e, 0, t + k (K_conv - 1)]
        return y.as_strided((y.shape[0], K, E, L), (Lp * K * E, E + (K_conv - 1) * K * E, 1, K * E))

    def _conv_tokens(self, x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None,
                     channel_major: bool = True) -> torch.Tensor:
        """The same as `_conv` through the depthwise conv op: x (batch, E, L) a view of the in_proj output ->
        (batch, K, L, E) stored (K, E, batch, L), or with ``channel_major=False`` (K, batch, L, E) (one kernel
        reads x through its strides; the backward recomputes the conv from x). Either way each direction's
        tokens over the batch are one matrix, so x_proj / dt_proj are one matmul per direction in the
        projected scan."""
        offsets = [-(self.d_conv - 1), 0][: taps.shape[0]]
        return depthwise_conv1d(x.transpose(1, 2), taps, bias, offsets, silu=True, channel_major=channel_major)

    def _projections(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """delta (batch, K, E, L) and B, C (batch, K, 1, N, L) of every direction, through the x_proj /
        dt_proj Linears over token-major views of u (module-layer FLOP counters, SiMBA's paper convention,
        see them as in the official code)."""
        deltas, Bs, Cs = [], [], []
        for k, (_, x_proj, dt_proj, _, _) in enumerate(self._branches()):
            x_dbl = x_proj(u[:, k].transpose(1, 2))  # (batch, L, R + 2N), tokens in natural order
            dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
            deltas.append(F.linear(dt, dt_proj.weight))
            Bs.append(B)
            Cs.append(C)
        # (batch, L, K, .) stacks (one direction: views), seen as the op's (batch, K, ., L) tensors
        def stack(ts):
            return ts[0].unsqueeze(2) if len(ts) == 1 else torch.stack(ts, dim=2)

        delta = stack(deltas).permute(0, 2, 3, 1)
        B = stack(Bs).permute(0, 2, 3, 1).unsqueeze(2)
        C = stack(Cs).permute(0, 2, 3, 1).unsqueeze(2)
        return delta, B, C

    def _direction_params(self, tokens: bool, proj_dtype: torch.dtype | None,
                          params: list[torch.Tensor | None] | None = None) -> tuple:
        """Every direction's parameters stacked as the fused path takes them (`stack_directions`): conv taps
        (K, E, d_conv) in natural token order, conv bias (K, E) or None, A (K, E, N) (stored with E contiguous for
        the walking forward when ``tokens``), D and delta_bias (K, E) in the scan's dtype and, with ``proj_dtype``,
        x_proj (K, R + 2N, E) and dt_proj (K, E, R) weights in it (else None). Built once for inference
        (`vssm.param_cache`); in training one autograd node (`_DirectionParams`). ``params``: `_direction_inputs()`,
        where the caller has it."""
        if params is None:
            params = self._direction_inputs()

        def build():
            if torch.is_grad_enabled() and any(p.requires_grad for p in params if p is not None) and plain_eager(
                    *params):
                return _DirectionParams.apply(tokens, proj_dtype, *params)
            return stack_directions(params, tokens, proj_dtype)

        return derived(self, ("params", tokens, proj_dtype), [p for p in params if p is not None], build)

    def _direction_inputs(self) -> list[torch.Tensor | None]:
        """Per direction k: conv weight (E, 1, d_conv), conv bias or None, x_proj weight, dt_proj weight, dt_proj
        bias, A_log, D (the layout `stack_directions` reads). Read from the modules' parameter dicts (the
        attribute lookups took ~20 us per call, paid by every inference call); through the attributes where a
        module holds them otherwise (parametrizations)."""
        mods, own = self._modules, self._parameters
        out = []
        for conv, x_proj, dt_proj, A_log, D in _BRANCH_NAMES[: 2 if self.bidirectional else 1]:
            c, xp, dp = mods[conv], mods[x_proj], mods[dt_proj]
            cp, xpp, dpp = c._parameters, xp._parameters, dp._parameters
            try:
                out += (cp["weight"], cp.get("bias"), xpp["weight"], dpp["weight"], dpp["bias"], own[A_log], own[D])
            except KeyError:
                out += (c.weight, c.bias, xp.weight, dp.weight, dp.bias, getattr(self, A_log), getattr(self, D))
        return out

    def mix(self, x: torch.Tensor, z: torch.Tensor, directions: bool = False) -> torch.Tensor:
        """All directions in one selective_scan call (no flip or transpose copies): x, z (batch, E, L)
        views of the in_proj output -> (batch, E, L), token-major in memory. ``directions`` (inference on the
        Triton backend only): the directions' outputs not summed, (batch, K, E, L) stored (batch, L, K, E)
        (`projected_scan_directions`)."""
        orders = ["natural", "reverse"] if self.bidirectional else ["natural"]
        fast = has_fast_kernel(x)
        # On CUDA without a backward, the scan's forward walks the steps with a channel's states in registers
        # (`scan_walks`): u is then stored token-major (each step's channels contiguous), and A with its
        # channels contiguous, as the walk reads it (the op then needs no transposed copy of it).
        # (the scan's inputs: x and the directions' parameters; in_proj and out_proj are outside it)
        params = self._direction_inputs()
        grad = backward_follows(x, z, *params)
        tokens = fast and not grad and scan_walks(x.shape[0], self.d_inner, self.d_state, x.shape[-1])
        taps, conv_bias, A, D, delta_bias, w_x, w_dt = self._direction_params(tokens, x.dtype if fast else None,
                                                                              params)
        if (fast and not tokens and FUSED_CONV_PROJECT
                and plain_eager(x, z, taps, conv_bias, A, D, delta_bias, w_x, w_dt)
                and conv_scan_supported(x, taps.shape[0], self.dt_rank, self.d_state)):
            # where the scan's forward does not walk (training; inference on long sequences and small batches), the
            # conv, x_proj and dt_proj in one kernel (`FUSED_CONV_PROJECT`); u / delta channel-major for the backward's
            # kernels, token-major without one. In plain eager mode only: the kernel's two forms are Python functions,
            # not custom ops, so under torch.compile / tracing the mixer takes the ops below
            offsets = [-(self.d_conv - 1), 0][: taps.shape[0]]
            scan = conv_scan_directions if directions else conv_projected_scan
            return scan(x.transpose(1, 2), taps, conv_bias, offsets, w_x, w_dt, A, D, z, delta_bias,
                        delta_softplus=True, orders=orders, combine="mean", channel_major=grad)
        if fast:
            # x_proj / dt_proj inside the op, which recomputes delta in its backward instead of keeping it;
            # u stored channel-major (the scan's chunk kernels read a few channels over many steps) unless it walks
            u = self._conv_tokens(x, taps, conv_bias, channel_major=not tokens).transpose(2, 3)  # (batch, K, E, L)
            scan = projected_scan_directions if directions else projected_scan
            return scan(u, w_x, w_dt, A, D, z, delta_bias, delta_softplus=True, orders=orders, combine="mean")
        u = self._conv(x, taps, conv_bias)
        delta, B, C = self._projections(u)
        return selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True, orders=orders,
                              combine="mean")

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """x: (batch, L, d_model) -> (batch, L, d_model). With ``residual`` (x's shape): residual + that, typed as
        that sum is; without a gradient on CUDA the sum is made inside out_proj's matmul (`_residual_out`)."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"Mamba: input has shape {tuple(x.shape)}, expected (batch, L, d_model={self.d_model})"
            )
        if residual is not None and (not isinstance(residual, torch.Tensor) or residual.shape != x.shape):
            got = tuple(residual.shape) if isinstance(residual, torch.Tensor) else type(residual).__name__
            raise ValueError(f"Mamba: `residual` has shape {got}, expected the input's {tuple(x.shape)}")
        h = self._in_proj(x)
        x, z = _split_in_proj(h)
        if residual is not None and self._fused_residual(x, residual):
            return self._residual_out(self._mix_planned(h), residual)
        y = self.mix_composed(x, z) if self.composed else self.mix(x, z)
        out = self.out_proj(y.transpose(1, 2))
        return out if residual is None else residual + out

    def _mix_split(self, h: torch.Tensor) -> torch.Tensor:
        """mix(directions=True) of the in_proj output h: the region `_mix_planned` records."""
        return self.mix(*_split_in_proj(h), directions=True)

    def _mix_planned(self, h: torch.Tensor) -> torch.Tensor:
        """`_mix_split(h)`, replayed from a launch plan (`vssm.kernels.replay`) where one was recorded for h's layout
        and the direction parameters as they are now (`LAUNCH_PLANS`). The second call with the same key records
        (the first builds the parameters' cached stacks, `vssm.param_cache`, which the plan then reads as
        constants); a region the recorder refuses runs as it is for that key. A plan is dropped when a direction
        parameter's storage or version counter moves, and when `vssm.param_cache` moves this module's generation
        (its `clear()`, a training step: writes through .data count there)."""
        if not LAUNCH_PLANS or not switch("VSSM_LAUNCH_PLANS", "replay recorded launches", "no launch plans"):
            return self._mix_split(h)
        dev = h.device
        key = (h.shape, h.stride(), h.dtype, dev, h.data_ptr() & 15, torch.is_inference_mode_enabled(),
               torch.is_autocast_enabled(dev.type), torch.get_autocast_dtype(dev.type), FUSED_CONV_PROJECT)
        params = [p for p in self._direction_inputs() if p is not None]
        try:
            stamp = (param_cache.generation(self), param_cache.stamp(params))
        except RuntimeError:  # inference tensors (a model made under inference mode) count no writes: no plans
            return self._mix_split(h)
        entries = _PLANS.get(self)
        if entries is None:
            entries = _PLANS[self] = {}
        hit = entries.get(key)
        if hit is not None and hit[0] == stamp:
            if hit[1] is not None:
                return hit[1].run((h,))
            if hit[2] or (dev.type == "cuda" and torch.cuda.is_current_stream_capturing()):
                return self._mix_split(h)  # refused for this key; or a CUDA graph is being captured (the
                # recording's check reads its result on the host)
            y, plan, why = replay.record(self._mix_split, (h,))
            entries[key] = (stamp, plan, why if plan is None else "", hit[3])
            return y
        if len(entries) >= _MAX_PLANS:  # shapes without end: start over
            entries.clear()
        # seen once. The parameters are kept (detached): their addresses in the stamp cannot go to new ones
        entries[key] = (stamp, None, "", [p.detach() for p in params])
        return self._mix_split(h)

    def _in_proj(self, x: torch.Tensor) -> torch.Tensor:
        """in_proj(x). Under CUDA autocast without a gradient, with the weight (and bias) cast to autocast's dtype
        once and reused while they are unchanged (`vssm.param_cache`): autocast casts a float32 weight again in
        every autocast region (a launch per layer and step, which the host pays in launch-bound inference). The
        same values: x in that dtype times the cast weight."""
        p = self.in_proj
        if (torch.is_grad_enabled() or not x.is_cuda or not torch.is_autocast_enabled("cuda")
                or type(p) is not nn.Linear or p._forward_hooks or p._forward_pre_hooks
                or p.weight.dtype != torch.float32 or x.dtype == torch.float64 or not plain_eager(x)):
            return p(x)
        dtype = torch.get_autocast_dtype("cuda")
        params = [p.weight] if p.bias is None else [p.weight, p.bias]
        w = derived(self, ("in_proj", dtype), params, lambda: [t.to(dtype) for t in params])
        with torch.autocast("cuda", enabled=False):
            return F.linear(x.to(dtype), *w)

    def _fused_residual(self, x: torch.Tensor, residual: torch.Tensor) -> bool:
        """Whether `_residual_out` computes residual + out_proj(the directions' sum): no gradient recorded, plain
        eager non-empty CUDA tensors on the Triton scan backend (the path of `mix` that `projected_scan_directions`
        serves), more than one direction, an out_proj Linear without bias or hooks, and a residual in x's dtype or
        float32 (`FUSED_RESIDUAL`)."""
        p = self.out_proj
        return (FUSED_RESIDUAL and self.bidirectional and not self.composed and not torch.is_grad_enabled()
                and has_fast_kernel(x) and x.numel() > 0 and default_backend(x.device) == "triton"
                and plain_eager(x, residual) and type(p) is nn.Linear and p.bias is None
                and not (p._forward_hooks or p._forward_pre_hooks) and residual.device == x.device
                and residual.dtype in (x.dtype, torch.float32) and x.dtype in (torch.float32, torch.bfloat16,
                                                                               torch.float16))

    def _residual_out(self, y: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """residual + out_proj(sum_k y[:, k]) as one matmul: y (batch, K, E, L) stored (batch, L, K, E) viewed as
        (batch x L, K x E), times out_proj's weight repeated K times along its input ((d_model, K x E), cached for
        inference), added to residual inside the matmul in float32 and written in residual's dtype (one launch
        for what was a sum over the directions, out_proj and the residual add; no rounding of the mixer's output
        to y's dtype in between). Where addmm refuses out_dtype for a float32 residual and half matrices, the
        matmul (rounded to y's dtype, as out_proj's output is under autocast) and then the add."""
        batch, K, E, L = y.shape
        w = derived(self, ("out_proj_repeated", y.dtype, K), [self.out_proj.weight],
                    lambda: self.out_proj.weight.to(y.dtype).repeat(1, K))
        rows = y.permute(0, 3, 1, 2).reshape(batch * L, K * E)
        res = residual.reshape(batch * L, residual.shape[-1])
        global _ADDMM_OUT_DTYPE
        with torch.autocast(y.device.type, enabled=False):  # addmm is on autocast's lower-precision list
            if residual.dtype == y.dtype:
                return torch.addmm(res, rows, w.t()).view(residual.shape)
            if _ADDMM_OUT_DTYPE:
                try:
                    return torch.addmm(res, rows, w.t(), out_dtype=residual.dtype).view(residual.shape)
                except (TypeError, NotImplementedError, RuntimeError) as e:  # no such addmm here
                    if isinstance(e, RuntimeError) and "dtype" not in str(e):
                        raise
                    _ADDMM_OUT_DTYPE = False
            return (res + torch.mm(rows, w.t())).view(residual.shape)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, d_conv={self.d_conv}, "
            f"dt_rank={self.dt_rank}, bidirectional={self.bidirectional}"
        )
