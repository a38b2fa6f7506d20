"""Pure-PyTorch selective scan (Mamba-1 S6): the CPU path and the oracle for the Triton kernels.

The recurrence, per batch row b, channel d and state n (channel d reads group g = d // (D / G)):

    dt_t = softplus(delta_t + delta_bias)        if delta_softplus else delta_t + delta_bias
    h_t  = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B[g, n, t] * u_t,     h_{-1} = 0
    y_t  = sum_n C[g, n, t] * h_t[n] + D[d] * u_t
    out  = y * silu(z)                            if z is given

`selective_scan_reference` evaluates it chunk by chunk instead of step by step. Inside a chunk of T
steps, with S_t = sum_{s<=t} dt_s * A (the cumulative log-decay from the chunk start),

    h_t = exp(S_t) * (h_start + sum_{s<=t} exp(-S_s) * dt_s * B_s * u_s)

which is two cumulative sums and a few elementwise ops over the whole chunk. The rounding error
of that sum is eps times the sum of absolute contributions, as for the step-by-step loop; the only
hazard is overflow of exp(-S_s), so the chunk length is picked from each batch row's own data (NaN
ignored) such that |S| stays under ``_LOG_BUDGET`` inside every chunk: one row never changes the
arithmetic of another. Per-step decays below ``-_DECAY_FLOOR`` are clamped there:
exp(-30) ~ 1e-13 is below float32 resolution, so the state is reset either way, and the clamp keeps
the chunks long. A short Python loop carries the state across chunks; the work is done on groups of
chunks whose size is capped by ``max_elements``, so memory stays bounded for any L.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "reference_backward",
    "reference_forward",
    "selective_scan_reference",
    "selective_scan_reference_backward",
]

_LOG_BUDGET = 60.0  # exp(60) ~ 1e26: products with |dt*B*u| up to ~1e12 stay finite in float32
_DECAY_FLOOR = 30.0  # exp(-30) ~ 9e-14: beneath float32 resolution and gradcheck tolerances
_MAX_CHUNK = 256


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The scan's arithmetic (and state) dtype for inputs like ``t``: float64 for float64, else float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    """Upcast, add bias/softplus and bring B/C to (batch, G, N, L)."""
    cd = compute_dtype(u)
    u = u.to(cd)
    dt = delta.to(cd)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cd)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    return u, dt, A.to(cd), B.to(cd), C.to(cd), cd


def _finish(y, u, D, z, cd, out_dtype):
    if D is not None:
        y = y + D.to(cd)[:, None] * u
    if z is not None:
        y = y * F.silu(z.to(cd))
    return y.to(out_dtype)


def _chunk_len(step: float, cap: int | None, L: int) -> int:
    """Chunk length for a largest per-step |log-decay| of `step`: |S| stays under _LOG_BUDGET."""
    budget = _MAX_CHUNK if step == 0.0 else int(max(1, min(_MAX_CHUNK, _LOG_BUDGET // step)))
    T = max(1, min(budget, cap if cap is not None else _MAX_CHUNK))
    # A chunk length dividing L (when one is close to T) spares the ragged tail chunk and its concat.
    divisor = next((c for c in range(min(T, L), 0, -1) if L % c == 0), 1)
    return divisor if 2 * divisor >= T else T


def _row_chunk_lens(u, delta, A, delta_bias, delta_softplus, cap: int | None) -> list[int]:
    """The chunk length of every batch row, from that row's own largest |log-decay| (NaN ignored, so a
    NaN never lifts the overflow guard): one row's values never change another row's arithmetic."""
    batch, _, L = u.shape
    if L == 0 or A.numel() == 0:
        return [_chunk_len(0.0, cap, L)] * batch
    with torch.no_grad():
        cd = compute_dtype(u)
        pre = delta.to(cd)
        if delta_bias is not None:
            pre = pre + delta_bias.to(cd)[:, None]
        dt = torch.logaddexp(pre, pre.new_zeros(())) if delta_softplus else pre
        Ac = A.to(cd)
        # dt * A[d, n] over n lies between dt * min_n A and dt * max_n A
        ends = torch.stack([dt * Ac.amin(1)[:, None], dt * Ac.amax(1)[:, None]])
        steps = ends.clamp_min(-_DECAY_FLOOR).nan_to_num(nan=0.0).abs().amax(dim=(0, 2, 3))
    return [_chunk_len(float(step), cap, L) for step in steps]


def _row_groups(chunk_lens: list[int], device) -> list[tuple[int, torch.Tensor | None]]:
    """(T, rows) for every distinct chunk length, rows on `device`; rows is None when every row has that length."""
    if len(set(chunk_lens)) <= 1:
        return [(chunk_lens[0] if chunk_lens else 1, None)]
    return [(T, torch.tensor([i for i, t in enumerate(chunk_lens) if t == T], device=device))
            for T in sorted(set(chunk_lens))]


def _linear_scan(log_decay: torch.Tensor, x: torch.Tensor, h0: torch.Tensor, T: int) -> torch.Tensor:
    """All states of h_t = exp(log_decay_t) * h_{t-1} + x_t along dim 3, from h_{-1} = h0.

    log_decay, x: (batch, G, dg, S, N); h0: (batch, G, dg, 1, N). Chunks of T steps, see module doc.
    """
    batch, G, dg, S, N = x.shape
    full = (S // T) * T
    pieces = [] if full == 0 else [(0, full, T)]
    if full < S:  # the ragged tail is one more chunk of its own length (no padding copies)
        pieces.append((full, S, S - full))
    outs = []
    h = h0
    for a, b, t in pieces:
        nc = (b - a) // t
        cum = log_decay[:, :, :, a:b].reshape(batch, G, dg, nc, t, N).cumsum(dim=4)
        grow = torch.exp(cum)  # within-chunk decay from the chunk start; >= exp(-_LOG_BUDGET)
        acc = (x[:, :, :, a:b].reshape(batch, G, dg, nc, t, N) / grow).cumsum(dim=4)
        starts = []
        for k in range(nc):
            starts.append(h)
            h = grow[:, :, :, k, -1:] * (h + acc[:, :, :, k, -1:])
        outs.append((grow * (acc + torch.stack(starts, dim=3))).reshape(batch, G, dg, b - a, N))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=3)


class _Scan:
    """Inputs of one scan brought to (batch, G, dg, L, N)-broadcastable float32/float64 views."""

    def __init__(self, u, delta, A, B, C, delta_bias, delta_softplus, T, max_elements, rows):
        self.cd = cd = compute_dtype(u)
        batch, dim, L = u.shape
        if B.dim() == 3:
            B, C = B.unsqueeze(1), C.unsqueeze(1)
        G, N = B.shape[1], B.shape[2]
        dg = dim // G
        self.shape = (batch, G, dg, L, N)
        self.u = u.to(cd).view(batch, G, dg, L, 1)
        pre = delta.to(cd)
        if delta_bias is not None:
            pre = pre + delta_bias.to(cd)[:, None]
        self.pre = pre.view(batch, G, dg, L, 1)
        # logaddexp(x, 0) is softplus; on CPU it runs ~20% faster than F.softplus
        self.dt = torch.logaddexp(self.pre, self.pre.new_zeros(())) if delta_softplus else self.pre
        self.A = A.to(cd).view(1, G, dg, 1, N)
        raw = self.dt * self.A
        self.log_decay = raw.clamp_min(-_DECAY_FLOOR)
        self.B = B.to(cd).transpose(2, 3).unsqueeze(2)  # (batch, G, 1, L, N)
        self.C = C.to(cd).transpose(2, 3).unsqueeze(2)
        self.T = T
        # Time steps per group so that one group's (rows, dim, steps, N) tensors stay under max_elements;
        # `rows` is the caller's whole batch, so that the grouping does not depend on the rows scanned here.
        per_chunk = max(1, rows * dim * self.T * N)
        self.group = max(1, max_elements // per_chunk) * self.T

    def segments(self):
        L = self.shape[3]
        return [(s, min(L, s + self.group)) for s in range(0, L, self.group)]

    def states(self, a: int, b: int, h0: torch.Tensor) -> torch.Tensor:
        x = self.dt[:, :, :, a:b] * self.u[:, :, :, a:b] * self.B[:, :, :, a:b]
        return _linear_scan(self.log_decay[:, :, :, a:b], x, h0, self.T)


def _reference_block(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    T: int,
    max_elements: int,
    rows: int,
):
    """One channel block (one group) of `selective_scan_reference` with chunks of T steps; `rows` is the
    whole batch the memory bound is reckoned for."""
    sc = _Scan(u, delta, A, B, C, delta_bias, delta_softplus, T, max_elements, rows)
    batch, G, dg, L, N = sc.shape
    h = sc.u.new_zeros(batch, G, dg, 1, N)
    ys = []
    for a, b in sc.segments():
        hs = sc.states(a, b, h)
        ys.append((hs * sc.C[:, :, :, a:b]).sum(-1))
        h = hs[:, :, :, -1:]
    y = torch.cat(ys, dim=-1).reshape(batch, G * dg, L) if ys else sc.u.new_zeros(batch, G * dg, 0)
    out = _finish(y, u.to(sc.cd), D, z, sc.cd, u.dtype)
    if return_last_state:
        return out, h.reshape(batch, G * dg, N)
    return out


def _reference_backward_block(
    dout: torch.Tensor,
    dlast: torch.Tensor | None,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    *,
    T: int,
    max_elements: int,
    rows: int,
) -> list[torch.Tensor | None]:
    """Gradients of the scan for (u, delta, A, B, C, D, z, delta_bias), by the adjoint recurrence.

    With a_t = exp(dt_t * A), dy = dout * silu(z) and the adjoint g_t = dL/dh_t,

        g_t = a_{t+1} * g_{t+1} + C_t * dy_t   (+ dlast at t = L-1)

    is the forward recurrence run backwards in time, and every gradient is a sum of products of
    g_t with h_{t-1}, h_t or the inputs. Works segment by segment from the end: the forward states
    at segment starts are kept, the states inside a segment are recomputed (as the kernels do).
    Gradients come back in float32 (float64 for float64 inputs); A's in A's compute dtype.
    """
    sc = _Scan(u, delta, A, B, C, delta_bias, delta_softplus, T, max_elements, rows)
    cd = sc.cd
    batch, G, dg, L, N = sc.shape
    dim = G * dg
    dout = dout.to(cd).view(batch, G, dg, L, 1)
    zz = None if z is None else z.to(cd).view(batch, G, dg, L, 1)
    Dv = None if D is None else D.to(cd).view(1, G, dg, 1, 1)

    segs = sc.segments()
    # forward states at segment starts; the last segment's own states are recomputed below anyway
    starts = [sc.u.new_zeros(batch, G, dg, 1, N)]
    for a, b in segs[:-1]:
        starts.append(sc.states(a, b, starts[-1])[:, :, :, -1:])

    g_next = sc.u.new_zeros(batch, G, dg, 1, N)
    if dlast is not None:
        g_next = dlast.to(cd).view(batch, G, dg, 1, N)  # enters as the adjoint of h_{L-1}
    la_next = torch.zeros_like(sc.log_decay[:, :, :, :1])  # decay applied to g_next: none at the end
    parts = {k: [] for k in ("u", "pre", "B", "C", "z")}
    dA = torch.zeros_like(sc.A)
    dD = None if D is None else torch.zeros(1, G, dg, 1, 1, dtype=cd, device=u.device)
    for (a, b), h0 in zip(reversed(segs), reversed(starts)):
        hs = sc.states(a, b, h0)
        u_s, dt_s, B_s, C_s = sc.u[:, :, :, a:b], sc.dt[:, :, :, a:b], sc.B[:, :, :, a:b], sc.C[:, :, :, a:b]
        dy = dout[:, :, :, a:b]
        if zz is not None:
            y = (hs * C_s).sum(-1, keepdim=True)
            if Dv is not None:
                y = y + Dv * u_s
            z_s = zz[:, :, :, a:b]
            sig = torch.sigmoid(z_s)
            parts["z"].append(dy * y * sig * (1 + z_s * (1 - sig)))
            dy = dy * z_s * sig
        # Reverse-time scan of the adjoint; step j of the flipped sequence decays by a_{t+1}.
        la = sc.log_decay[:, :, :, a:b]
        shifted = torch.cat([la[:, :, :, 1:], la_next], dim=3)
        g = _linear_scan(shifted.flip(3), (C_s * dy).flip(3), g_next, sc.T).flip(3)
        g_next, la_next = g[:, :, :, :1], la[:, :, :, :1]
        hprev = torch.cat([h0, hs[:, :, :, :-1]], dim=3)
        dla = g * hprev * torch.exp(la) * (la > -_DECAY_FLOOR)  # clamped steps pass no gradient
        ddt = (dla * sc.A).sum(-1, keepdim=True) + (g * u_s * B_s).sum(-1, keepdim=True)
        dA = dA + (dla * dt_s).sum(dim=(0, 3), keepdim=True)
        du = (g * dt_s * B_s).sum(-1, keepdim=True)
        if Dv is not None:
            du = du + dy * Dv
            dD = dD + (dy * u_s).sum(dim=(0, 3), keepdim=True)
        parts["u"].append(du)
        parts["pre"].append(ddt * torch.sigmoid(sc.pre[:, :, :, a:b]) if delta_softplus else ddt)
        parts["B"].append((g * dt_s * u_s).sum(2))  # (batch, G, S, N)
        parts["C"].append((hs * dy).sum(2))

    def cat(name, dim_):
        return torch.cat(parts[name][::-1], dim=dim_) if parts[name] else None

    du = cat("u", 3).reshape(batch, dim, L)
    dpre = cat("pre", 3).reshape(batch, dim, L)
    bc_shape = B.shape
    dB = cat("B", 2).transpose(2, 3).reshape(bc_shape)
    dC = cat("C", 2).transpose(2, 3).reshape(bc_shape)
    dz = None if z is None else cat("z", 3).reshape(batch, dim, L)
    ddelta_bias = None if delta_bias is None else dpre.sum(dim=(0, 2))
    dDv = None if D is None else dD.reshape(dim)
    return [du, dpre, dA.reshape(dim, N), dB, dC, dDv, dz, ddelta_bias]


_STEP_ELEMENTS = 1 << 14  # the carry across chunks works on (rows, channels, N) slices: at least this many


def _channel_blocks(u: torch.Tensor, B: torch.Tensor, cache_elements: int,
                    rows: int | None = None, T: int | None = None) -> list[tuple[int, int, int]]:
    """Channel ranges (start, stop, group) whose (rows, channels, L, N) working set fits in cache (rows:
    the caller's whole batch, by default u's).

    The chunked math streams several tensors of that size; on a CPU it runs ~2x faster when they
    stay in cache than when each elementwise op sweeps the whole (batch, D, L, N) volume. With chunks of
    T < L steps, the short Python loop that carries the state across chunks runs once per chunk and
    block on (rows, channels, N) slices: the blocks then grow until those slices hold `_STEP_ELEMENTS`,
    so that short chunks (strong decays) do not turn into thousands of tiny ops.
    """
    batch, dim, L = u.shape
    batch = batch if rows is None else rows
    G = B.shape[1] if B.dim() == 4 else 1
    N = B.shape[-2]
    dg = dim // G
    per_channel = max(1, batch * L * N)
    if T is not None and T < L:
        cache_elements = max(cache_elements, _STEP_ELEMENTS * L)
    cb = max([c for c in range(1, dg + 1) if dg % c == 0 and c * per_channel <= cache_elements] or [1])
    return [(c, c + cb, c // dg) for c in range(0, dim, cb)]


def _block_args(c0, c1, g, u, delta, A, B, C, D, z, delta_bias):
    def ch(t, dim_):
        return None if t is None else t.narrow(dim_, c0, c1 - c0)

    bsel = (lambda t: t.narrow(1, g, 1)) if B.dim() == 4 else (lambda t: t)
    return (ch(u, 1), ch(delta, 1), ch(A, 0), bsel(B), bsel(C), ch(D, 0), ch(z, 1), ch(delta_bias, 0))


def _select_rows(args: tuple, rows: torch.Tensor | None) -> tuple:
    """The per-row tensors of (u, delta, A, B, C, D, z, delta_bias) restricted to `rows` (None: all)."""
    if rows is None:
        return args
    return tuple(t.index_select(0, rows) if t is not None and i in (0, 1, 3, 4, 6) else t for i, t in enumerate(args))


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    chunk_size: int | None = None,
    max_elements: int = 1 << 24,
    cache_elements: int = 1 << 18,
):
    """Chunked selective scan in plain PyTorch (differentiable through autograd too).

    Shapes: u, delta, z (batch, D, L); A (D, N); B, C (batch, G, N, L) or (batch, N, L);
    D, delta_bias (D,). Arguments are not validated here: `vssm.kernels.selective_scan` does that.
    Returns out (batch, D, L) in u's dtype and, with ``return_last_state``, the final state
    (batch, D, N) in float32 (float64 for float64 inputs). ``chunk_size`` caps the chunk length
    (it is shortened further where the decay demands); ``max_elements`` bounds the working set;
    channels are processed in blocks of about ``cache_elements`` state elements. Every batch row takes
    the chunk length its own decays demand (rows that agree run together), so NaN or inf in one row
    never changes another row's result.
    """
    batch = u.shape[0]
    groups = _row_groups(_row_chunk_lens(u, delta, A, delta_bias, delta_softplus, chunk_size), u.device)
    kw = dict(max_elements=max_elements, rows=batch)
    if len(groups) == 1 and len(_channel_blocks(u, B, cache_elements, T=groups[0][0])) == 1:
        res = _reference_block(u, delta, A, B, C, D, z, delta_bias, delta_softplus, True, T=groups[0][0], **kw)
        return res if return_last_state else res[0]
    out = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    last = torch.empty(u.shape[0], u.shape[1], A.shape[1], dtype=compute_dtype(u), device=u.device)
    for T, rows in groups:
        for c0, c1, g in _channel_blocks(u, B, cache_elements, batch, T):
            args = _select_rows(_block_args(c0, c1, g, u, delta, A, B, C, D, z, delta_bias), rows)
            y, h = _reference_block(*args, delta_softplus, True, T=T, **kw)
            if rows is None:
                out[:, c0:c1], last[:, c0:c1] = y, h
            else:
                out[rows, c0:c1], last[rows, c0:c1] = y, h
    return (out, last) if return_last_state else out


def selective_scan_reference_backward(
    dout: torch.Tensor,
    dlast: torch.Tensor | None,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    *,
    chunk_size: int | None = None,
    max_elements: int = 1 << 24,
    cache_elements: int = 1 << 18,
) -> list[torch.Tensor | None]:
    """Gradients for (u, delta, A, B, C, D, z, delta_bias); see `_reference_backward_block` for the math.
    Rows are chunked as in `selective_scan_reference`; the parameters' gradients add the row groups up
    in a fixed order."""
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    if u.shape[-1] == 0:  # no steps: the output is empty and the last state is the zero initial state
        cd = compute_dtype(u)
        return [None if t is None else torch.zeros(t.shape, dtype=cd, device=u.device) for t in inputs]
    groups = _row_groups(_row_chunk_lens(u, delta, A, delta_bias, delta_softplus, chunk_size), u.device)
    kw = dict(cache_elements=cache_elements, max_elements=max_elements, rows=u.shape[0])
    if len(groups) == 1:
        return _backward_rows(dout, dlast, inputs, delta_softplus, groups[0][0], **kw)
    grads: list[torch.Tensor | None] = [None] * 8
    for T, rows in groups:
        part = _backward_rows(dout.index_select(0, rows), None if dlast is None else dlast.index_select(0, rows),
                              _select_rows(inputs, rows), delta_softplus, T, **kw)
        for i, g in enumerate(part):
            if g is None:
                continue
            if i in (0, 1, 3, 4, 6):  # per-row tensors
                if grads[i] is None:
                    grads[i] = g.new_zeros((inputs[i].shape[0], *g.shape[1:]))
                grads[i].index_copy_(0, rows, g)
            else:
                grads[i] = g if grads[i] is None else grads[i] + g
    return grads


def _backward_rows(dout, dlast, inputs, delta_softplus, T, *, cache_elements, max_elements, rows):
    """`selective_scan_reference_backward` for rows that share the chunk length T, channel block by block."""
    u, delta, A, B, C, D, z, delta_bias = inputs
    parts = []
    blocks = _channel_blocks(u, B, cache_elements, rows, T)
    for c0, c1, g in blocks:
        args = _block_args(c0, c1, g, u, delta, A, B, C, D, z, delta_bias)
        dl = None if dlast is None else dlast.narrow(1, c0, c1 - c0)
        parts.append(_reference_backward_block(dout.narrow(1, c0, c1 - c0), dl, *args, delta_softplus, T=T,
                                               max_elements=max_elements, rows=rows))
    if len(parts) == 1:
        return parts[0]
    grads: list[torch.Tensor | None] = []
    for i in range(8):
        if parts[0][i] is None:
            grads.append(None)
        elif i in (3, 4):  # B, C: channels of one group share them, so their gradients add up
            total = torch.zeros(B.shape, dtype=parts[0][i].dtype, device=B.device)
            for (_, _, g), p in zip(blocks, parts):
                if B.dim() == 4:
                    total[:, g : g + 1] += p[i]
                else:
                    total += p[i]
            grads.append(total)
        else:
            grads.append(torch.cat([p[i] for p in parts], dim=0 if i in (2, 5, 7) else 1))
    return grads


# ----------------------------------------------------------------------------------------------
# several directions: each one gathered into its visiting order, scanned, and scattered back


def _k(t: torch.Tensor | None, k: int, lead: int, idx: torch.Tensor | None, cd=None) -> torch.Tensor | None:
    """Direction k of a normal-form tensor (see op.py), in visiting order when `idx` is given."""
    if t is None:
        return None
    t = t.select(lead, k)
    if cd is not None:
        t = t.to(cd)
    return (t if idx is None else t.index_select(-1, idx)).contiguous()


def _orders(index: torch.Tensor | None, K: int) -> list[torch.Tensor | None]:
    return [None] * K if index is None else [row.long() for row in index]


def reference_forward(u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale):
    """The op's forward in normal form (u (batch, K, D, L), ..., index (K, L) or None): every direction
    through `selective_scan_reference`, outputs summed in natural order and scaled; returns out
    (batch, D, L) in u's dtype and the last states (batch, K, D, N)."""
    batch, K, dim, L = u.shape
    cd = compute_dtype(u)
    out = torch.zeros((batch, dim, L), dtype=cd, device=u.device)
    lasts = []
    for k, idx in enumerate(_orders(index, K)):
        y, last = selective_scan_reference(
            _k(u, k, 1, idx, cd), _k(delta, k, 1, idx), A[k], _k(B, k, 1, idx), _k(C, k, 1, idx),
            None if D is None else D[k], _k(z, k, 1, idx), None if delta_bias is None else delta_bias[k],
            delta_softplus, True,
        )
        if idx is None:
            out += y
        else:
            out.index_add_(-1, idx, y)
        lasts.append(last)
    if scale != 1.0:
        out *= scale
    return out.to(u.dtype), torch.stack(lasts, dim=1)


def reference_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale):
    """Gradients of `reference_forward` for (u, delta, A, B, C, D, z, delta_bias) in normal form; dlast None: no
    gradient reached the last states."""
    batch, K, dim, L = u.shape
    cd = compute_dtype(u)
    dout = dout.to(cd) * scale
    per_k = []
    for k, idx in enumerate(_orders(index, K)):
        g = selective_scan_reference_backward(
            _k(dout.unsqueeze(1), 0, 1, idx), None if dlast is None else dlast[:, k], _k(u, k, 1, idx), _k(delta, k, 1, idx), A[k],
            _k(B, k, 1, idx), _k(C, k, 1, idx), None if D is None else D[k], _k(z, k, 1, idx),
            None if delta_bias is None else delta_bias[k], delta_softplus,
        )
        if idx is not None:  # back to natural token order
            g = [t if t is None or i in (2, 5, 7) else torch.empty_like(t).index_copy_(-1, idx, t)
                 for i, t in enumerate(g)]
        per_k.append(g)

    def stack(i, lead):
        return None if per_k[0][i] is None else torch.stack([g[i] for g in per_k], dim=lead)

    return [stack(0, 1), stack(1, 1), stack(2, 0), stack(3, 1), stack(4, 1), stack(5, 0), stack(6, 1), stack(7, 0)]
