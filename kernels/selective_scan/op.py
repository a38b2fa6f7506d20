"""`selective_scan`: argument checks, backend choice, and the `torch.ops.vssm` registration.

One pair of ops, `vssm::selective_scan_fwd` / `vssm::selective_scan_bwd`, registered with
`torch.library.custom_op` (fake implementations included) and tied together by `register_autograd`,
so `torch.compile(fullgraph=True)` traces models through it and autograd works in eager mode.

The ops see every call in one normal form with K directions: u, delta, z (batch, K, D, L); A (K, D, N);
B, C (batch, K, G, N, L); D, delta_bias (K, D); the visiting orders as a (K, L) int32 table (or None
for the natural order); out (batch, D, L) is ``scale * sum_k out_k`` in natural token order. A
single-direction call is K = 1 through `unsqueeze` views; a shared input of a multi-direction call is
an `expand` view (stride 0 over K), so autograd sums its per-direction gradients. Nothing is copied:
the kernels read every tensor through its strides.

Backends:
- ``"reference"``: the chunked pure-PyTorch scan (`reference.py`), for any device.
- ``"triton"``: the Triton kernels (`triton_fwd.py`, `triton_bwd.py`, `triton_bwd_n1.py`), for CUDA
  tensors (or on the CPU under ``TRITON_INTERPRET=1``).
- ``"cpu"``: compiled loops (`cpu.py`, numba), for CPU tensors.
``backend=None`` picks Triton for CUDA tensors when Triton is importable, the compiled loops for CPU
tensors when numba is importable, and the reference otherwise; the environment variable
``VSSM_SCAN_BACKEND`` (``reference`` / ``triton`` / ``cpu``) overrides that default. Under Triton,
float64 inputs and empty tensors take the reference (the kernels accumulate in float32).
"""

from __future__ import annotations

import functools
import inspect
import os
import types
from typing import Optional, Sequence

import torch

from ..eager import plain_eager
from ..launch import on_device_of
from ..layout import is_batch_inner, new_rows, row_strides
from .orders import Order, order_index
from .reference import compute_dtype, reference_backward, reference_forward

__all__ = ["selective_scan", "BACKENDS", "COMBINES", "default_backend"]

BACKENDS = ("reference", "triton", "cpu")
COMBINES = ("sum", "mean")
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
    device = u.device
    for name, t in (("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z), ("delta_bias", delta_bias)):
        if t is not None and t.device != device:
            raise ValueError(f"selective_scan: `{name}` is on {t.device}, expected the device of `u` ({device})")


def _per_direction(name: str, t, K: int, shared: tuple, shared_dims: str, per_dir_dims: str, device) -> torch.Tensor:
    """`t` with the direction axis inserted (an expand view when it is shared by the K directions)."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"selective_scan: `{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOAT:
        raise TypeError(
            f"selective_scan: `{name}` must be a floating tensor (float16/bfloat16/float32/float64), got {t.dtype}"
        )
    if t.device != device:
        raise ValueError(f"selective_scan: `{name}` is on {t.device}, expected the device of `u` ({device})")
    lead = 1 if name in ("u", "delta", "z", "B", "C") else 0  # batch leads the tensors that have one
    per_dir = shared[:lead] + (K,) + shared[lead:]
    if tuple(t.shape) == per_dir:
        return t
    if tuple(t.shape) == shared:
        return t.unsqueeze(lead).expand(per_dir)
    exp_s = "(" + ", ".join(map(str, shared)) + ")"
    exp_k = "(" + ", ".join(map(str, per_dir)) + ")"
    raise ValueError(
        f"selective_scan: `{name}` has shape {_shape(t)}; with K={K} orders it must be {shared_dims} = {exp_s} "
        f"(shared by every direction) or {per_dir_dims} = {exp_k} (one per direction)"
    )


def _normalize_orders(u, delta, A, B, C, D, z, delta_bias, orders, grid):
    """Multi-direction arguments -> the ops' normal form (see the module docstring) and the order table."""
    if not isinstance(u, torch.Tensor) or u.dim() not in (3, 4):
        got = _shape(u) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"selective_scan: `u` has shape {got}, expected (batch, D, L) or (batch, K, D, L)")
    batch, dim, L = u.shape[0], u.shape[-2], u.shape[-1]
    index = order_index(orders, L, grid, u.device)
    K = index.shape[0]
    if all(isinstance(o, str) and o in ("natural", "rows") for o in orders):
        index = None  # every direction in natural order: the kernels index tokens directly (vector loads)
    if not isinstance(A, torch.Tensor) or A.dim() not in (2, 3):
        got = _shape(A) if isinstance(A, torch.Tensor) else type(A).__name__
        raise ValueError(f"selective_scan: `A` has shape {got}, expected (D, N) or (K, D, N) with D = {dim}, K = {K}")
    N = A.shape[-1]
    if not isinstance(B, torch.Tensor) or B.dim() not in (3, 4, 5):
        got = _shape(B) if isinstance(B, torch.Tensor) else type(B).__name__
        raise ValueError(
            f"selective_scan: `B` has shape {got}, expected (batch, N, L), (batch, G, N, L) or (batch, K, G, N, L)"
        )
    G = 1 if B.dim() == 3 else B.shape[-3]
    if G < 1 or dim % G != 0:
        raise ValueError(f"selective_scan: the number of groups G={G} in `B` {_shape(B)} must divide D={dim}")
    dev = u.device
    u = _per_direction("u", u, K, (batch, dim, L), "(batch, D, L)", "(batch, K, D, L)", dev)
    delta = _per_direction("delta", delta, K, (batch, dim, L), "(batch, D, L)", "(batch, K, D, L)", dev)
    z = _per_direction("z", z, K, (batch, dim, L), "(batch, D, L)", "(batch, K, D, L)", dev)
    A = _per_direction("A", A, K, (dim, N), "(D, N)", "(K, D, N)", dev)
    D = _per_direction("D", D, K, (dim,), "(D,)", "(K, D)", dev)
    delta_bias = _per_direction("delta_bias", delta_bias, K, (dim,), "(D,)", "(K, D)", dev)
    BC = []
    for name, t in (("B", B), ("C", C)):
        if isinstance(t, torch.Tensor) and t.dim() == 3:
            t = t.unsqueeze(1)
        BC.append(_per_direction(name, t, K, (batch, G, N, L), "(batch, G, N, L)", "(batch, K, G, N, L)", dev))
    return u, delta, A, BC[0], BC[1], D, z, delta_bias, index


def _normalize_single(u, delta, A, B, C, D, z, delta_bias):
    """A single-direction call as K = 1 (views only)."""
    B = B if B.dim() == 4 else B.unsqueeze(1)
    C = C if C.dim() == 4 else C.unsqueeze(1)

    def k1(t, lead):
        return None if t is None else t.unsqueeze(lead)

    return k1(u, 1), k1(delta, 1), k1(A, 0), k1(B, 1), k1(C, 1), k1(D, 0), k1(z, 1), k1(delta_bias, 0)


# ----------------------------------------------------------------------------------------------
# backends


@functools.cache  # a failed import is not retried on every call of the op
def _triton_available() -> bool:
    try:
        from . import triton_fwd  # noqa: F401
    except Exception:  # ImportError, or triton present without a usable driver
        return False
    return True


@functools.cache
def _cpu_available() -> bool:
    try:
        from . import cpu  # noqa: F401
    except ImportError:  # numba (or llvmlite) missing or broken: the reference serves the CPU
        return False
    return True


def default_backend(device: torch.device) -> str:
    """Backend used when `backend=None`: $VSSM_SCAN_BACKEND if set, else Triton on CUDA and the compiled
    loops on the CPU where they import, else the reference."""
    env = os.environ.get("VSSM_SCAN_BACKEND", "").strip().lower()
    if env:
        if env not in BACKENDS:
            raise ValueError(f"VSSM_SCAN_BACKEND={env!r}: expected one of {BACKENDS}")
        return env
    if device.type == "cuda" and _triton_available():
        return "triton"
    if device.type == "cpu" and _cpu_available():
        return "cpu"
    return "reference"


def _use_triton(backend: str, u: torch.Tensor) -> bool:
    return backend == "triton" and u.dtype != torch.float64 and u.numel() > 0


@functools.cache
def _tk() -> types.SimpleNamespace:
    """The Triton modules, imported once (an import statement costs microseconds of host time on every call;
    attributes are looked up at each call, so replacing one in its module takes effect)."""
    from . import triton_bwd, triton_bwd_n1, triton_common, triton_conv_proj, triton_fwd, triton_thin

    return types.SimpleNamespace(fwd=triton_fwd, bwd=triton_bwd, n1=triton_bwd_n1, common=triton_common,
                                 thin=triton_thin, conv_proj=triton_conv_proj)


def backward_follows(*tensors) -> bool:
    """Whether a backward may follow a call on these inputs: grad mode is on and one of them requires grad
    (decided by the caller of an autograd.Function: inside it grad mode is off, and its needs_input_grad is
    True for a parameter under no_grad too). Non-tensors and None are ignored."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _states_T() -> int:
    return _tk().common.DEFAULT_TILES.walk_T


def _walks(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> bool:
    """Whether the backward of this call runs the N = 1 chunk-walking kernel (see `_triton_backward`)."""
    if A.shape[-1] != 1 or token_major(u):
        return False
    batch, K, dim, _ = u.shape
    tk = _tk()
    return batch * K * (dim // tk.n1.walk_block_d(dim // B.shape[2], 1)) >= tk.common.DEFAULT_TILES.walk_min_programs


def _triton_backward(*args, states=None):
    """N = 1 on channel-major tensors walks the chunks when (rows x channel blocks) fill the GPU (its lanes
    run along time); token-major N = 1 and every other case runs every chunk in parallel (lanes along
    channels). H200, VMamba-T stage 1 with four orders, bf16: token-major 6.7 ms chunk-parallel vs 10.4
    walking; channel-major 22.8 walking vs 43+ chunk-parallel (tools/bench_scan.py --n1)."""
    if _walks(args[2], args[4], args[5]):
        return _tk().n1.triton_backward_walk(*args, states=states)
    return _tk().bwd.triton_backward_chunks(*args)


def _empty(like: torch.Tensor) -> torch.Tensor:
    return like.new_empty((0,))


def token_major(u: torch.Tensor) -> bool:
    """True when (batch, K, D, L) `u` has channels innermost (a Linear's (batch, L, D) output); the op then
    writes out and the gradients of u, delta, z token-major too."""
    return u.stride(2) == 1 and u.shape[2] > 1 and u.stride(3) != 1


def _directions_outer(u: torch.Tensor) -> bool:
    """Token-major (batch, K, D, L) `u` stored (K, batch, L, D): the directions outside the batch, so that
    each direction's tokens over the batch are one (batch x L, D) matrix (`layout.token_matrix`)."""
    return u.shape[0] > 1 and u.shape[1] > 1 and u.stride(1) > u.stride(0)


def _token_major_strides(shape: tuple, directions_outer: bool) -> tuple:
    batch, K, dim, L = shape
    if directions_outer:
        return (L * dim, batch * L * dim, 1, dim)
    return (K * L * dim, L * dim, 1, dim)


def _layout_strides(u: torch.Tensor) -> tuple:
    """The strides of `new_like_layout(u, u.shape, .)`."""
    if token_major(u):
        return _token_major_strides(tuple(u.shape), _directions_outer(u))
    return row_strides(u.shape, is_batch_inner(u))


def new_out(u: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    """The op's empty out (batch, D, L): token-major when z (the gate the consumer sees) or u is."""
    batch, _, dim, L = u.shape
    if token_major(u) or (z is not None and token_major(z)):
        return u.new_empty((batch, L, dim)).transpose(1, 2)
    return u.new_empty((batch, dim, L))


def sum_directions(dest: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """The sum over the directions (axis 1) of dest (batch, K, D, L), into out or (None) a new tensor in the
    layout of dest's slices. Two directions: one elementwise add, the same rounding as torch.sum (one
    float32 sum, rounded once), which ran a reduction kernel at a fraction of the copy speed on token-major
    slices (Vim-Ti at 1248, batch 8, H200: 4.9 ms per step)."""
    if dest.shape[1] == 2:
        return torch.add(dest[:, 0], dest[:, 1], out=out)
    return torch.sum(dest, dim=1, out=out)


def new_like_layout(u: torch.Tensor, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An empty (..., D, L) tensor, token-major in memory when `u` is (see `token_major`; the directions outside
    the batch when u has them there), else channel-major
    with rows of `layout.padded_len(L)` tokens, the batch between channels and tokens when u has it there
    (`layout.is_batch_inner`)."""
    if token_major(u):
        if len(shape) == 4:  # stored (batch, K, L, D), or (K, batch, L, D) when u has its directions outside
            return u.new_empty_strided(shape, _token_major_strides(shape, _directions_outer(u)), dtype=dtype)
        return u.new_empty((*shape[:-2], shape[-1], shape[-2]), dtype=dtype).transpose(-1, -2)
    return new_rows(u, shape, dtype, batch_inner=is_batch_inner(u))


# ----------------------------------------------------------------------------------------------
# torch.library registration


def _scan_fwd_impl(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    index: Optional[torch.Tensor],
    delta_softplus: bool,
    scale: float,
    keep_states: bool,
    backend: str,
    backward: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """out (batch, D, L), the last state of every direction (batch, K, D, N), and the chunk-start
    states the backward would otherwise recompute (None unless `_keeps_states`; the registered op returns an
    empty tensor instead). ``backward``: whether a backward may follow (False lets the Triton forward pick the
    kernels only measured without one)."""
    if _use_triton(backend, u):
        states_T = _states_T() if keep_states else 0
        with on_device_of(u):
            out, last, states = _tk().fwd.triton_forward(u, delta, A, B, C, D, z, delta_bias, index,
                                                         delta_softplus, scale, states_T=states_T,
                                                         backward=backward)
        return out, last, states
    if backend == "cpu":
        from .cpu import cpu_forward

        out, last = cpu_forward(u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale)
        return out, last, None
    out, last = reference_forward(u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale)
    return new_out(u, z).copy_(out), last.contiguous(), None


@functools.wraps(_scan_fwd_impl)  # its arguments; the schema is read from __signature__ (below)
def _scan_fwd_op(*args, **kwargs):
    out, last, states = _scan_fwd_impl(*args, **kwargs)
    return out, last, states if states is not None else _empty(last)  # a custom op returns tensors only


# _scan_fwd_impl's signature with the op's outputs all tensors (its third may be None)
_scan_fwd_op.__signature__ = inspect.signature(_scan_fwd_impl).replace(
    return_annotation=tuple[torch.Tensor, torch.Tensor, torch.Tensor])


_scan_fwd = torch.library.custom_op("vssm::selective_scan_fwd", mutates_args=())(_scan_fwd_op)


@_scan_fwd.register_fake
def _scan_fwd_fake(u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale, keep_states, backend,
                   backward=True):
    batch, K, dim, L = u.shape
    last = u.new_empty((batch, K, dim, A.shape[-1]), dtype=compute_dtype(u))
    if keep_states and _use_triton(backend, u):
        states = last.new_empty((batch * K, dim, -(-L // _states_T()), A.shape[-1]))
    else:
        states = _empty(last)
    return new_out(u, z), last, states


def _scan_bwd_impl(
    dout: torch.Tensor,
    dlast: Optional[torch.Tensor],
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    index: Optional[torch.Tensor],
    states: Optional[torch.Tensor],
    delta_softplus: bool,
    scale: float,
    backend: str,
) -> list[Optional[torch.Tensor]]:
    """Gradients for (u, delta, A, B, C, D, z, delta_bias); None for an absent input (the registered op returns an
    empty tensor instead). states: the forward's kept states, None or empty where it kept none. dlast None:
    no gradient reached the last states (every backend takes None; the Triton kernels then read none)."""
    if _use_triton(backend, u):
        with on_device_of(u):
            grads = _triton_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, delta_softplus,
                                     scale, states=states if states is not None and states.numel() else None)
    elif backend == "cpu":
        from .cpu import cpu_backward

        grads = cpu_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale)
    else:
        grads = reference_backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale)
    ref = (u, delta, A, B, C, D, z, delta_bias)
    res = []
    u_layout = _layout_strides(u)
    for i, (g, r) in enumerate(zip(grads, ref)):
        if g is None:
            res.append(None)
        elif r.dim() == 4:  # u, delta: in u's layout, z in z's, as the fake implementation says (`.to` would
            # not keep padded rows, being a dense copy)
            like = z if i == 6 else u
            same = g.stride() == (_layout_strides(z) if i == 6 else u_layout) and g.dtype == r.dtype
            res.append(g if same else new_like_layout(like, tuple(g.shape), r.dtype).copy_(g))
        else:  # (a dtype check here costs less host time than a `.to` that returns its input)
            res.append((g if g.dtype == r.dtype else g.to(r.dtype)).contiguous())
    return res


def _distinct(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """`grads` with no two sharing a storage (a custom op's outputs may not alias each other): the Triton
    backward's dD and d(delta_bias) are two rows of one sum."""
    seen = set()
    res = []
    for g in grads:
        if g.numel():
            ptr = g.untyped_storage().data_ptr()
            if ptr in seen:
                g = g.clone()
            seen.add(ptr)
        res.append(g)
    return res


@functools.wraps(_scan_bwd_impl)  # its arguments; the schema is read from __signature__ (below)
def _scan_bwd_op(*args, **kwargs):
    u = args[2] if len(args) > 2 else kwargs["u"]
    grads = [_empty(u) if g is None else g for g in _scan_bwd_impl(*args, **kwargs)]  # a custom op returns tensors
    return _distinct(grads)


_scan_bwd_op.__signature__ = inspect.signature(_scan_bwd_impl).replace(return_annotation=list[torch.Tensor])


_scan_bwd = torch.library.custom_op("vssm::selective_scan_bwd", mutates_args=())(_scan_bwd_op)


@_scan_bwd.register_fake
def _scan_bwd_fake(dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, states, delta_softplus, scale, backend):
    ref = (u, delta, A, B, C, D, z, delta_bias)
    res = []
    for i, r in enumerate(ref):
        if r is None:
            res.append(_empty(u))
        elif r.dim() == 4:
            res.append(new_like_layout(z if i == 6 else u, tuple(r.shape), r.dtype))
        else:
            res.append(r.new_empty(r.shape))
    return res


def _setup_context(ctx, inputs, output, extra=()):
    """Saves the normal-form tensors and the forward's states (then `extra` tensors) for `_backward`."""
    u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale, keep_states, backend, _ = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, index, output[2], *extra)
    ctx.delta_softplus, ctx.scale, ctx.backend = delta_softplus, scale, backend


def _backward(ctx, dout, dlast, dstates, bwd=None, saved=None):
    """Gradients of the op's inputs; `saved`: the normal-form tensors and states (else ctx's saved ones)."""
    u, delta, A, B, C, D, z, delta_bias, index, states = saved if saved is not None else ctx.saved_tensors
    batch, K, dim, L = u.shape
    if dout is None:
        dout = u.new_zeros((batch, dim, L))
    # dlast None (no gradient reached the last states: the usual case) stays None down to the kernels
    grads = (bwd or _scan_bwd)(
        dout, dlast, u, delta, A, B, C, D, z, delta_bias, index, states, ctx.delta_softplus, ctx.scale, ctx.backend
    )
    present = (True, True, True, True, True, D is not None, z is not None, delta_bias is not None)
    grads = [g if p else None for g, p in zip(grads, present)]
    return (*grads, None, None, None, None, None, None)


torch.library.register_autograd("vssm::selective_scan_fwd", _backward, setup_context=_setup_context)


_LEADS = (1, 1, 0, 1, 1, 0, 1, 0)  # where the normal form puts K in u, delta, A, B, C, D, z, delta_bias


def _to_input_shape(g: torch.Tensor | None, shape: torch.Size | None, lead: int) -> torch.Tensor | None:
    """A normal-form gradient back in the caller's `shape` (the inverse of `_normalize_single` /
    `_per_direction`): the K axis is summed where the caller's tensor was shared by the directions and
    dropped where K = 1; B / C given as (batch, N, L) also drop the group axis."""
    if g is None or shape is None or g.shape == shape:
        return g
    g = g.sum(lead) if g.shape[lead] > 1 else g.select(lead, 0)
    return g.select(1, 0) if g.dim() > len(shape) else g


class _EagerScan(torch.autograd.Function):
    """The op pair without the dispatcher (see `vssm.kernels.eager`): same forward, saved tensors and
    backward, on the caller's tensors. The normal form's views are made inside, so autograd records no
    node per view (eight fewer nodes to make and run per call), and the gradients go back to the
    caller's shapes through `_to_input_shape`."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, options):
        # an output no gradient reached comes to the backward as None, not as a tensor of zeros autograd would
        # allocate and fill (the last states, unless the caller uses them)
        ctx.set_materialize_grads(False)
        inputs = (u, delta, A, B, C, D, z, delta_bias)
        op_args = prepare(*inputs, *options)
        out, last, states = _scan_fwd_impl(*op_args)
        # the normal form (views made here) for the backward, and the caller's tensors for a create_graph one
        _setup_context(ctx, op_args, (out, last, states), extra=inputs)
        ctx.options = options
        ctx.shapes = tuple(None if t is None else t.shape for t in inputs)
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        saved = ctx.saved_tensors
        normal = saved[:10]
        if torch.is_grad_enabled():
            # create_graph=True: the views made in forward are not connected to the caller's tensors, so the
            # normal form is made again from them; a differentiable backward (the reference's) then has
            # second derivatives that reach the inputs, as through the dispatcher path
            normal = (*prepare(*saved[10:], *ctx.options)[:9], saved[9])
        grads = _backward(ctx, dout, dlast, None, bwd=_scan_bwd_impl, saved=normal)[:8]
        return (*(_to_input_shape(g, s, lead) for g, s, lead in zip(grads, ctx.shapes, _LEADS)), None)


# ----------------------------------------------------------------------------------------------
# public entry point


def prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus, orders, grid, combine, backend,
            grad: bool | None = None) -> tuple:
    """Checks the arguments of `selective_scan` and returns the ops' argument tuple (the normal form, see
    the module docstring): u, delta, A, B, C, D, z, delta_bias, index, delta_softplus, scale, keep_states,
    backend, grad. ``grad``: whether a backward will follow (None: grad mode is on and an input requires grad)."""
    if orders is None:
        if grid is not None:
            raise ValueError("selective_scan: `grid` is only used with `orders`")
        _validate(u, delta, A, B, C, D, z, delta_bias)
        args = _normalize_single(u, delta, A, B, C, D, z, delta_bias)
        index, scale = None, 1.0
    else:
        *args, index = _normalize_orders(u, delta, A, B, C, D, z, delta_bias, orders, grid)
        if combine not in COMBINES:
            raise ValueError(f"selective_scan: `combine` must be one of {COMBINES}, got {combine!r}")
        scale = 1.0 / args[0].shape[1] if combine == "mean" else 1.0
    if backend is None:
        backend = default_backend(u.device)
    elif backend not in BACKENDS:
        raise ValueError(f"selective_scan: `backend` must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "cpu":
        if u.device.type != "cpu":
            raise ValueError(f"selective_scan: backend 'cpu' runs on CPU tensors, got `u` on {u.device}")
        if not _cpu_available():
            raise ValueError("selective_scan: backend 'cpu' needs numba (`pip install numba`); "
                             "backend='reference' runs without it")
    # N = 1 walking backward: the forward keeps its chunk-start states (L / 32 per channel) when a
    # backward will follow, sparing the backward a carry pass over u and delta
    if grad is None:
        grad = backward_follows(*args)
    keep = backend == "triton" and grad and _walks(args[0], args[2], args[3])
    return (*args, index, bool(delta_softplus), float(scale), keep, backend, bool(grad))


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
    orders: Sequence[Order] | None = None,
    grid: tuple[int, int] | None = None,
    combine: str = "sum",
    backend: str | None = None,
):
    """Mamba-1 selective scan (S6), over one direction or several visiting orders in one call.

    Single direction (``orders=None``):
        u, delta, z: (batch, D, L); A: (D, N); B, C: (batch, G, N, L) or (batch, N, L) (channel d
        reads group d // (D/G)); D, delta_bias: (D,). Returns out (batch, D, L) in u's dtype, and
        with ``return_last_state`` the final state (batch, D, N) in float32.

    Several directions (``orders=[...]``, K of them): direction k visits the tokens in the order
    ``orders[k]`` (a name from `vssm.kernels.selective_scan.ORDERS`, e.g. ``"natural"``,
    ``"reverse"``, ``"cols"``, ``"cols_reverse"`` with ``grid=(H, W)``, or a permutation tensor of
    length L). Every tensor is indexed by natural token position; each may be shared by all
    directions (the single-direction shape) or given per direction with K after the batch axis
    (``u``/``delta``/``z`` (batch, K, D, L), ``B``/``C`` (batch, K, G, N, L)) or first (``A``
    (K, D, N), ``D``/``delta_bias`` (K, D)). Each direction's output (gated by silu(z) when z is
    given) is taken back to natural order and the K of them are summed (``combine="sum"``) or
    averaged (``"mean"``) into one out (batch, D, L); the last states are (batch, K, D, N).

    Any strides are read as they are: token-major tensors (a Linear's (batch, L, D) output seen as
    ``x.transpose(1, 2)``) need no copy, and out comes back token-major when u or z is. The arithmetic
    is float32 (float64 for float64 inputs) whatever the input dtype.

    backend: ``"reference"``, ``"triton"``, ``"cpu"`` or None (see `default_backend`).
    """
    if plain_eager(u, delta, A, B, C, D, z, delta_bias):
        grad = backward_follows(u, delta, A, B, C, D, z, delta_bias)  # decided here, outside the Function
        options = (delta_softplus, orders, grid, combine, backend, grad)
        out, last = _EagerScan.apply(u, delta, A, B, C, D, z, delta_bias, options)
    else:
        op_args = prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus, orders, grid, combine, backend)
        out, last, _ = torch.ops.vssm.selective_scan_fwd(*op_args)
    if not return_last_state:
        return out
    return out, (last[:, 0] if orders is None else last)
