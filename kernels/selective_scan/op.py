"""`selective_scan`: argument checks, backend choice, and the `torch.ops.vssm` registration.

The op is registered with `torch.library.custom_op` as a forward op and a backward op, each with a
fake (meta) implementation, and tied together with `register_autograd`, so `torch.compile` traces
models that use it without a graph break and autograd works in eager mode.

Backends:
- ``"reference"``: `reference.selective_scan_reference` (pure PyTorch; backward by recomputing the
  forward under autograd).
- ``"triton"``: the Triton kernels (`triton_scan.py`), for CUDA tensors (or on the CPU under
  ``TRITON_INTERPRET=1``).
``backend=None`` picks Triton for CUDA tensors when Triton is importable and the reference otherwise;
the environment variable ``VSSM_SCAN_BACKEND`` (``reference`` / ``triton``) overrides that default.
"""

from __future__ import annotations

import functools
import os
from typing import Optional

import torch

from .reference import compute_dtype, selective_scan_reference, selective_scan_reference_backward

__all__ = ["selective_scan", "BACKENDS", "default_backend"]

BACKENDS = ("reference", "triton")
_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ----------------------------------------------------------------------------------------------
# argument checks


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_tensor(name: str, t, expected: tuple, dims: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"selective_scan: `{name}` must be a torch.Tensor of shape {dims}, got {type(t).__name__}")
    if t.dtype not in _FLOAT:
        raise TypeError(
            f"selective_scan: `{name}` must be a floating tensor (float16/bfloat16/float32/float64), got {t.dtype}"
        )
    if tuple(t.shape) != tuple(expected):
        exp = "(" + ", ".join(str(s) for s in expected) + ")"
        raise ValueError(f"selective_scan: `{name}` has shape {_shape(t)}, expected {dims} = {exp}")


def _validate(u, delta, A, B, C, D, z, delta_bias) -> None:
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"selective_scan: `u` must be a torch.Tensor of shape (batch, D, L), got {type(u).__name__}")
    if u.dim() != 3:
        raise ValueError(f"selective_scan: `u` has shape {_shape(u)}, expected 3 dims (batch, D, L)")
    batch, dim, L = u.shape
    _check_tensor("u", u, (batch, dim, L), "(batch, D, L)")
    _check_tensor("delta", delta, (batch, dim, L), "(batch, D, L)")
    if not isinstance(A, torch.Tensor) or A.dim() != 2:
        got = _shape(A) if isinstance(A, torch.Tensor) else type(A).__name__
        raise ValueError(f"selective_scan: `A` has shape {got}, expected 2 dims (D, N) with D = {dim}")
    N = A.shape[1]
    _check_tensor("A", A, (dim, N), "(D, N)")
    for name, t in (("B", B), ("C", C)):
        if not isinstance(t, torch.Tensor) or t.dim() not in (3, 4):
            got = _shape(t) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"selective_scan: `{name}` has shape {got}, expected (batch, G, N, L) or (batch, N, L) "
                f"with batch={batch}, N={N}, L={L}"
            )
    G = B.shape[1] if B.dim() == 4 else 1
    if G < 1 or dim % G != 0:
        raise ValueError(
            f"selective_scan: the number of groups G={G} in `B` {_shape(B)} must divide D={dim} (channel d uses group d // (D/G))"
        )
    for name, t in (("B", B), ("C", C)):
        if t.dim() == 4:
            _check_tensor(name, t, (batch, G, N, L), "(batch, G, N, L)")
        else:
            _check_tensor(name, t, (batch, N, L), "(batch, N, L)")
    if C.dim() == 4 and C.shape[1] != G:
        raise ValueError(f"selective_scan: `C` has G={C.shape[1]} groups but `B` has G={G}")
    if C.dim() != B.dim():
        raise ValueError(f"selective_scan: `B` {_shape(B)} and `C` {_shape(C)} must both be 3-D or both 4-D")
    if z is not None:
        _check_tensor("z", z, (batch, dim, L), "(batch, D, L)")
    if D is not None:
        _check_tensor("D", D, (dim,), "(D,)")
    if delta_bias is not None:
        _check_tensor("delta_bias", delta_bias, (dim,), "(D,)")
    for name, t in (("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z), ("delta_bias", delta_bias)):
        if t is not None and t.device != u.device:
            raise ValueError(f"selective_scan: `{name}` is on {t.device}, expected the device of `u` ({u.device})")


# ----------------------------------------------------------------------------------------------
# backends


@functools.cache  # a failed import is not retried on every call of the op
def _triton_available() -> bool:
    try:
        from . import triton_scan  # noqa: F401
    except Exception:  # ImportError, or triton present without a usable driver
        return False
    return True


def default_backend(device: torch.device) -> str:
    """Backend used when `backend=None`: $VSSM_SCAN_BACKEND if set, else Triton on CUDA."""
    env = os.environ.get("VSSM_SCAN_BACKEND", "").strip().lower()
    if env:
        if env not in BACKENDS:
            raise ValueError(f"VSSM_SCAN_BACKEND={env!r}: expected one of {BACKENDS}")
        return env
    if device.type == "cuda" and _triton_available():
        return "triton"
    return "reference"


def _empty(like: torch.Tensor) -> torch.Tensor:
    return like.new_empty((0,))


# ----------------------------------------------------------------------------------------------
# torch.library registration


@torch.library.custom_op("vssm::selective_scan_fwd", mutates_args=())
def _scan_fwd(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    if backend == "triton":
        from .triton_scan import triton_forward

        return triton_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    out, last = selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state=True)
    return out.contiguous(), last.contiguous()


@_scan_fwd.register_fake
def _scan_fwd_fake(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    return u.new_empty(u.shape), u.new_empty((u.shape[0], u.shape[1], A.shape[1]), dtype=compute_dtype(u))


@torch.library.custom_op("vssm::selective_scan_bwd", mutates_args=())
def _scan_bwd(
    dout: torch.Tensor,
    dlast: torch.Tensor,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
    backend: str,
) -> list[torch.Tensor]:
    """Gradients for (u, delta, A, B, C, D, z, delta_bias); an empty tensor stands for an absent input."""
    if backend == "triton":
        from .triton_scan import triton_backward

        grads = triton_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    else:
        grads = selective_scan_reference_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    ref = (u, delta, A, B, C, D, z, delta_bias)
    return [_empty(u) if g is None else g.to(r.dtype).contiguous() for g, r in zip(grads, ref)]


@_scan_bwd.register_fake
def _scan_bwd_fake(dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend):
    ref = (u, delta, A, B, C, D, z, delta_bias)
    return [_empty(u) if r is None else r.new_empty(r.shape) for r in ref]


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
    ctx.delta_softplus = delta_softplus
    ctx.backend = backend


def _backward(ctx, dout, dlast):
    u, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(u)
    if dlast is None:
        dlast = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]), dtype=compute_dtype(u))
    grads = _scan_bwd(
        dout.contiguous(), dlast.contiguous(), u, delta, A, B, C, D, z, delta_bias, ctx.delta_softplus, ctx.backend
    )
    present = (True, True, True, True, True, D is not None, z is not None, delta_bias is not None)
    grads = [g if p else None for g, p in zip(grads, present)]
    return (*grads, None, None)


torch.library.register_autograd("vssm::selective_scan_fwd", _backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------------------------
# public entry point


def selective_scan(
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
    backend: str | None = None,
):
    """Mamba-1 selective scan (S6).

    Args:
        u, delta: (batch, D, L) input and step size.
        A: (D, N) state matrix (negative for a stable scan; ``-exp(A_log)``).
        B, C: (batch, G, N, L) input/output matrices shared by the D/G channels of each group,
            or (batch, N, L) for G = 1.
        D: (D,) skip connection; z: (batch, D, L) gate (``out = y * silu(z)``);
        delta_bias: (D,) added to delta before the optional softplus.
        return_last_state: also return the final state (batch, D, N), float32.
        backend: ``"reference"``, ``"triton"`` or None (see `default_backend`).

    Returns:
        out (batch, D, L) in u's dtype, computed in float32; ``(out, last_state)`` when
        ``return_last_state``.
    """
    _validate(u, delta, A, B, C, D, z, delta_bias)
    if backend is None:
        backend = default_backend(u.device)
    elif backend not in BACKENDS:
        raise ValueError(f"selective_scan: `backend` must be one of {BACKENDS} or None, got {backend!r}")
    out, last = torch.ops.vssm.selective_scan_fwd(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), backend)
    return (out, last) if return_last_state else out
