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
hazard is overflow of exp(-S_s), so the chunk length is picked from the data such that |S| stays
under ``_LOG_BUDGET`` inside every chunk. Per-step decays below ``-_DECAY_FLOOR`` are clamped there:
exp(-30) ~ 1e-13 is below float32 resolution, so the state is reset either way, and the clamp keeps
the chunks long. A short Python loop carries the state across chunks; the work is done on groups of
chunks whose size is capped by ``max_elements``, so memory stays bounded for any L.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["selective_scan_reference", "selective_scan_loop"]

_LOG_BUDGET = 60.0  # exp(60) ~ 1e26: products with |dt*B*u| up to ~1e12 stay finite in float32
_DECAY_FLOOR = 30.0  # exp(-30) ~ 9e-14: beneath float32 resolution and gradcheck tolerances
_MAX_CHUNK = 64


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Upcast, add bias/softplus and bring B/C to (batch, G, N, L)."""
    cd = _compute_dtype(u)
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
):
    """Chunked selective scan in plain PyTorch (differentiable through autograd).

    Shapes: u, delta, z (batch, D, L); A (D, N); B, C (batch, G, N, L) or (batch, N, L);
    D, delta_bias (D,). Arguments are not validated here: `vssm.kernels.selective_scan` does that.
    Returns out (batch, D, L) in u's dtype and, with ``return_last_state``, the final state
    (batch, D, N) in float32 (float64 for float64 inputs).
    """
    out_dtype = u.dtype
    u, dt, A, B, C, cd = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    G, N = B.shape[1], B.shape[2]
    dg = dim // G

    # (batch, G, dg, L, N) layout: the decay varies with (d, n), the input matrix with (g, n).
    dA = (dt.view(batch, G, dg, L, 1) * A.view(1, G, dg, 1, N)).clamp_min(-_DECAY_FLOOR)
    if chunk_size is None:
        step = float(dA.detach().abs().amax()) if dA.numel() else 0.0
        chunk_size = _MAX_CHUNK if step == 0.0 else int(max(1, min(_MAX_CHUNK, _LOG_BUDGET // step)))
    T = max(1, int(chunk_size))
    Bt = B.transpose(2, 3).unsqueeze(2)  # (batch, G, 1, L, N)
    Ct = C.transpose(2, 3).unsqueeze(2)
    dtu = (dt * u).view(batch, G, dg, L, 1)

    # Chunks per group so that one group's (batch, dim, chunks*T, N) tensors stay under max_elements.
    per_chunk = max(1, batch * dim * T * N)
    group = max(1, max_elements // per_chunk) * T

    h = u.new_zeros(batch, G, dg, 1, N)
    ys = []
    for start in range(0, L, group):
        stop = min(L, start + group)
        seg = stop - start
        nc = math.ceil(seg / T)
        pad = nc * T - seg
        a = dA[:, :, :, start:stop]
        x = dtu[:, :, :, start:stop] * Bt[:, :, :, start:stop]
        c = Ct[:, :, :, start:stop]
        if pad:
            # Padding decays by 0 and adds 0, so the carried state passes through unchanged.
            a = F.pad(a, (0, 0, 0, pad))
            x = F.pad(x, (0, 0, 0, pad))
            c = F.pad(c, (0, 0, 0, pad))
        a = a.reshape(batch, G, dg, nc, T, N)
        x = x.reshape(batch, G, dg, nc, T, N)
        S = a.cumsum(dim=4)
        local = torch.exp(S) * (torch.exp(-S) * x).cumsum(dim=4)  # chunk states from a zero start
        decay = torch.exp(S[:, :, :, :, -1:])  # (batch, G, dg, nc, 1, N)
        starts = []
        for k in range(nc):
            starts.append(h)
            h = decay[:, :, :, k] * h + local[:, :, :, k, -1:]
        hs = local + torch.exp(S) * torch.stack(starts, dim=3)
        y = (hs.reshape(batch, G, dg, nc * T, N) * c.reshape(batch, G, 1, nc * T, N)).sum(-1)
        ys.append(y[..., :seg])
    y = torch.cat(ys, dim=-1).reshape(batch, dim, L) if ys else u.new_zeros(batch, dim, 0)
    out = _finish(y, u, D, z, cd, out_dtype)
    if return_last_state:
        return out, h.reshape(batch, dim, N)
    return out


def selective_scan_loop(
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
):
    """The recurrence one step at a time: slow, obviously right. Used as a benchmark baseline."""
    out_dtype = u.dtype
    u, dt, A, B, C, cd = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    G, N = B.shape[1], B.shape[2]
    Bx = B.repeat_interleave(dim // G, dim=1)  # (batch, dim, N, L)
    Cx = C.repeat_interleave(dim // G, dim=1)
    h = u.new_zeros(batch, dim, N)
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bx[..., t]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, dim, 0)
    out = _finish(y, u, D, z, cd, out_dtype)
    return (out, h) if return_last_state else out
