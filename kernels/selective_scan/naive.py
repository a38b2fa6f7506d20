"""The selective scan one step at a time: slow and obviously right, the oracle of every test.

Per batch row, channel d (group g = d // (D / G)) and state n:

    dt_t = softplus(delta_t + delta_bias)        if delta_softplus else delta_t + delta_bias
    h_t  = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B[g, n, t] * u_t,     h_{-1} = 0
    y_t  = sum_n C[g, n, t] * h_t[n] + D[d] * u_t
    out  = y * silu(z)                            if z is given

With ``orders``, direction k runs the same loop over the tokens in the order ``orders[k]`` (every
input is indexed by natural token position, and shared inputs are used by every direction), its
output is written back to the tokens it visited, and the directions are summed or averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .orders import order_index

__all__ = ["selective_scan_naive"]


def _loop(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """One direction in natural order; every argument already upcast, B/C (batch, G, N, L)."""
    dt = delta if delta_bias is None else delta + delta_bias[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    batch, dim, L = u.shape
    G = B.shape[1]
    Bx = B.repeat_interleave(dim // G, dim=1)  # (batch, dim, N, L)
    Cx = C.repeat_interleave(dim // G, dim=1)
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bx[..., t]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, dim, 0)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y, h


def selective_scan_naive(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
    *, orders=None, grid=None, combine="sum",
):
    """Same arguments and results as `vssm.kernels.selective_scan` (no checks); float32 arithmetic, or
    float64 for float64 inputs. With orders, the last states are (batch, K, D, N)."""
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32
    L = u.shape[-1]
    index = None if orders is None else order_index(orders, L, grid).long()
    K = 1 if index is None else index.shape[0]

    def pick(t, k, per_dir_dims, lead):
        """Direction k of t (shared when t has the single-direction rank), upcast."""
        if t is None:
            return None
        if index is not None and t.dim() == per_dir_dims:
            t = t.select(lead, k)
        return t.to(cd)

    out, lasts = 0.0, []
    for k in range(K):
        Bk = pick(B, k, 5, 1)
        Ck = pick(C, k, 5, 1)
        Bk = Bk if Bk.dim() == 4 else Bk.unsqueeze(1)
        Ck = Ck if Ck.dim() == 4 else Ck.unsqueeze(1)
        args = [pick(u, k, 4, 1), pick(delta, k, 4, 1), pick(A, k, 3, 0), Bk, Ck,
                pick(D, k, 2, 0), pick(z, k, 4, 1), pick(delta_bias, k, 2, 0)]
        if index is not None:  # visit the tokens of direction k in its order
            args = [t.index_select(-1, index[k]) if t is not None and t.dim() >= 3 else t for t in args]
        y, h = _loop(*args, delta_softplus)
        if index is not None:
            y = torch.empty_like(y).index_copy_(-1, index[k], y)
        out = out + y
        lasts.append(h)
    if index is not None and combine == "mean":
        out = out / K
    out = out.to(u.dtype)
    last = lasts[0] if index is None else torch.stack(lasts, dim=1)
    return (out, last) if return_last_state else out
