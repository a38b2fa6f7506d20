"""What the Triton selective-scan kernels share: jitted helpers, tile configs, launch geometry, buffers.

The math is stated in `naive.py`. The kernels see the op's normal form (op.py): K directions, every
per-token tensor indexed (batch, K, ...) through its strides (stride 0 over K for a shared input),
and a "row" r = b * K + k for each (batch row, direction). Position i of direction k's scan reads
token ``order[k, i]`` (GATHER) or token i (natural order, no table).

Imports go one way: this module <- `triton_carry` <- `triton_fwd`, `triton_bwd`, `triton_bwd_n1`.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import triton
import triton.language as tl

from ..env import interpreting
from ..intmath import cdiv, next_pow2
from .op import new_like_layout

LOG2E = tl.constexpr(1.4426950408889634)  # jitted code reads module globals only as constexprs


def _walk_from_env() -> bool | None:
    raw = os.environ.get("VSSM_SCAN_FWD", "").strip().lower()
    if raw not in ("", "walk", "chunk"):
        raise ValueError(f"VSSM_SCAN_FWD={raw!r}: expected 'walk', 'chunk' or unset (the op picks)")
    return {"walk": True, "chunk": False}.get(raw)


@dataclasses.dataclass(frozen=True)
class Tiles:
    """Tile sizes and launch thresholds (measured on the H100 and H200: kernels/selective_scan/NOTES.md).

    T = steps per chunk; *_dn = channels x states per program, which with 32 lanes x warps keeps
    time inside each thread (time-major tiles); fwd_smid_bd = channels per program of the states-middle
    tiles, whose lanes go to the channels first. Tests pass smaller ones to cover many chunks cheaply.
    """

    fwd_T: int = 32
    fwd_T_n1: int = 16  # N = 1: one state per thread leaves room for fewer steps only (no spills)
    fwd_warps: int = 4
    fwd_dn: int = 128
    fwd_min_programs: int = 264  # below this many programs the forward splits time into segments
    fwd_loop_min_programs: int = 1056  # K > 1: one program loops over the directions from this many
    # N >= 64 (SiMBA's d_state): shorter chunks, two channels more per program, 8 warps. H200, bf16, SiMBA-S
    # shapes (128, D, L, 64): 9.13 / 4.33 / 3.20 ms against 10.25 / 5.11 / 4.57 with the settings above
    # at (D, L) = (128, 3136) / (256, 784) / (640, 196) (tools: .gpu sweep, see NOTES.md)
    fwd_T_wide: int = 16
    fwd_dn_wide: int = 256
    fwd_warps_wide: int = 8
    # forward walking one step at a time with the states of a channel in one thread's registers (lanes over
    # channels only: no shuffles for the sums over states, see NOTES.md "States in registers"); for
    # 2 <= N <= fwd_walk_max_np when no chunk-start states are kept. None (default): where it was measured
    # to pay, no backward to follow, token-major u and delta, at most fwd_walk_max_L tokens and at least
    # fwd_walk_min_programs programs; True: wherever it can run; False: never. VSSM_SCAN_FWD=walk / chunk
    # sets True / False.
    fwd_walk: bool | None = _walk_from_env()
    fwd_walk_bd: int = 128
    fwd_walk_warps: int = 4
    # H200, bf16, two directions, (batch, D, L) = (128, 768, 197) / (128, 384, 197) / (64, 384, 197):
    # 0.644 / 0.335 / 0.226 ms walking against 1.074 / 0.548 / 0.285 for the chunk kernel on channel-major
    # rows; (32, 384, 1025) and (8, 384, 6085) (96 and 24 programs): 1.0 / 1.7 against 0.59 / 0.84 ms
    fwd_walk_min_programs: int = 192
    fwd_walk_max_L: int = 256  # measured faster at L = 197 only; longer sequences with many programs untimed
    # K > 1: one program walks every direction from this many (1.2-1.3x faster at 384 and 768, 0.75x at 192)
    fwd_walk_loop_min_programs: int = 384
    fwd_walk_max_np: int = 16  # NP = 32 spilled (ptxas, sm_90a: 255 registers + 348 bytes)
    # the walk's B / C / A loads without state masks (`EVEN_N`) where N = NP from this many states: H200, bf16, two
    # directions, 16 states at (128, 768, 197) / (128, 384, 197) / (64, 384, 197): 545.9 / 277.9 / 150.1 us against
    # 643.7 / 333.6 / 210.2 masked; 8 states at (128, 384, 197): 295.1 against 282.1, so N = 8 keeps the masks
    fwd_walk_even_min_np: int = 16
    # the chunk kernel with the states as its tiles' middle dim (`SMID`): 8 channels x 4 lanes of states per warp,
    # NP / 4 states in each thread, so the sum over states is mostly in-thread adds and two shuffles (the states-last
    # tiles lay the states over 16 lanes: four shuffles per step and state). For fwd_smid_min_np <= NP <=
    # fwd_smid_max_np; None (default): from fwd_smid_min_programs (row, channel block) programs; True: wherever the
    # lanes fit; False: never. H200, bf16, two directions (NOTES.md "Stop 29"): (128, 384, 197, 16) 613 -> 325 us,
    # (128, 768, 197, 16) 1197 -> 636, (8, 384, 6085, 16) 906 -> 627; batch 1-4 at the last (96-384 programs) slower
    # (594 / 558 / 554 against 456 / 341 / 465), batch 6 (576) faster (597 against 766); 4 states 128 against 123
    fwd_smid: bool | None = None
    fwd_smid_min_np: int = 8
    fwd_smid_max_np: int = 16
    fwd_smid_bd: int = 8
    fwd_smid_warps: int = 1
    fwd_smid_T: int = 8  # steps per chunk at 16 states (NP / 4 per thread); 8 and 4 states take 2x and 4x
    # at most this many programs: chunks twice as long (every warp resident: more independent work per warp); at
    # (8, 384, 6085, 16) 631 against 824 us, at (32, 384, 1025, 16) (3072 programs) T 16 took 588 against 432
    fwd_smid_long_max_programs: int = 1056
    fwd_smid_min_programs: int = 512  # the default's threshold; SMID never cuts time into segments (slower: NOTES.md)
    # on CUDA a forward without a backward takes its softplus's log from lg2.approx (`_softplus`). H200, bf16 (stop
    # 30): Vim-Ti 1248 inference step 13.89 -> 13.68 ms of forward kernels; Vim-S training 12.89 -> 13.73 with it
    fwd_fast_log: bool = True
    bwd_T: int = 16
    bwd_T_n1: int = 8
    bwd_warps: int = 4
    bwd_dn: int = 128
    bwd_dn_grouped: int = 64  # G > 1 (H100, G = 4: 6.6 vs 7.2 ms at 128 / 4 warps)
    bwd_warps_grouped: int = 2
    # N >= bwd_short_min_np on sequences of at most bwd_short_max_L tokens: 4 channels x 64 states per program
    # and chunks of 8 steps. H200, bf16, SiMBA-S's shapes (128, D, L, 64), backward with its carry pair:
    # (640, 196) 11.46 / (896, 49) 4.49 ms against 12.15 / 5.18 with the settings above, while at (128, 3136)
    # and (256, 784) they were 0.6-0.7% slower (NOTES.md)
    bwd_dn_short: int = 256
    bwd_T_short: int = 8
    bwd_short_min_np: int = 64
    bwd_short_max_L: int = 256
    bwd_target_programs: int = 1056  # ~8 programs per SM before channel slices are added
    carry_warps: int = 4
    carry_dn: int = 128
    # the forward's carry walks its chunks in one program per (row, channel block) below this many chunks, and
    # from there runs two passes (local segments side by side, then a combine). H200, bf16, the whole forward of
    # (2, 192, 12544, 1), 784 chunks: 0.167 ms against 0.813; (1, 768, 3136, 1), 196 chunks: 0.196 against 0.220;
    # but Vim-Ti at 1248 batch 1 (191 chunks, host-bound) took 30-41 ms per batch with two passes against 25-28
    # serial (their extra launch and allocations), so short walks stay serial (NOTES.md). The N = 1 backward's
    # recomputed states take the same carry (one chunk per slot; not timed)
    carry_two_pass_min_chunks: int = 384
    # two passes: local segments side by side until the local pass has this many programs. (1, 384, 6085, 16) two
    # directions: 0.211 ms at 1056 against 0.268 with one local segment per time segment
    carry_min_programs: int = 1056
    walk_T: int = 32  # N = 1 backward: chunk-walking kernel, time across lanes
    walk_tile: int = 128
    walk_warps: int = 4
    walk_min_programs: int = 264


DEFAULT_TILES = Tiles()


# ----------------------------------------------------------------------------------------------
# jitted helpers


@triton.jit
def _combine(a_l, x_l, a_r, x_r):
    # (a_l, x_l) is the earlier part of the sequence: h = a_r * (a_l * h0 + x_l) + x_r
    return a_l * a_r, x_l * a_r + x_r


@triton.jit
def _reverse_scan(a, x):
    """Suffix scan of (a, x) pairs along axis 0, which must be held inside each thread.

    Written as flip, prefix scan, flip: for an axis inside the thread the flips are register
    renaming, while `associative_scan(reverse=True)` compiled to ~320 warp shuffles per tile.
    """
    a_cum, x_cum = tl.associative_scan((tl.flip(a, 0), tl.flip(x, 0)), 0, _combine)
    return tl.flip(a_cum, 0), tl.flip(x_cum, 0)


@triton.jit
def _softplus(x, FAST_LOG: tl.constexpr = False):
    """log(1 + exp(x)), x itself above 20. FAST_LOG (compiled for NVIDIA GPUs only: inline PTX, which the
    interpreter cannot run): the log through the GPU's lg2.approx.f32 instead of the libdevice log's ~25
    instructions; sm_90a, Vim-Ti's states-middle forward: 882 -> 774 instructions per chunk (NOTES.md "Stop 30").
    Its error is absolute (~2^-22 on 1 + exp(x) in (1, 2]), so for very negative x the relative error grows: ~2e-4 at
    dt = 1e-3, against ~6e-5 for the exact log of the rounded 1 + exp(x); both far below bfloat16's 4e-3."""
    e1 = 1.0 + tl.exp(x)
    if FAST_LOG:
        lg = tl.inline_asm_elementwise("lg2.approx.f32 $0, $1;", "=r,r", [e1], dtype=tl.float32, is_pure=True,
                                       pack=1) * 0.6931471805599453
    else:
        lg = tl.log(e1)
    return tl.where(x > 20.0, x, lg)


@triton.jit
def _step_size(delta, bias, mask, SOFTPLUS: tl.constexpr, MASK_T: tl.constexpr = True):
    """dt = softplus(delta + bias) (or delta + bias), bias broadcast by the caller; 0 where masked,
    so a padded step is a no-op. SOFTPLUS: 0 none, 1 softplus, 2 softplus with its log approximated
    (`_softplus`'s FAST_LOG; CUDA only)."""
    dt = delta + bias
    if SOFTPLUS:
        dt = _softplus(dt, SOFTPLUS == 2)
    if MASK_T:
        dt = tl.where(mask, dt, 0.0)
    return dt


@triton.jit
def _token_index(pos, L, order_ptr, GATHER: tl.constexpr, IDX64: tl.constexpr):
    """Token read at scan positions `pos`: order[pos] (order_ptr at the direction's row) or pos itself."""
    if GATHER:
        idx = tl.load(order_ptr + pos, mask=pos < L, other=0)
    else:
        idx = pos
    if IDX64:
        idx = idx.to(tl.int64)
    return idx


@triton.jit
def _direction64(kd, IDX64: tl.constexpr):
    """The direction index, int64 where offsets need it (IDX64: a direction's stride times K - 1 may pass
    2**31 elements when the directions are stored outside the batch)."""
    if IDX64:  # tl.cast: a Python int under the interpreter (a loop index); one return (Triton's return types)
        kd = tl.cast(kd, tl.int64)
    return kd


@triton.jit
def _channel_block(pid, n_dblk, dim_per_group, N, BLOCK_D: tl.constexpr, NP: tl.constexpr):
    """Program `pid`'s row r (batch row x direction, or batch row), its first channel d0, the channels'
    group g, the channel offsets, the (padded) state offsets and their mask."""
    r = pid // n_dblk
    d0 = (pid % n_dblk) * BLOCK_D
    offs_n = tl.arange(0, NP)
    return r, d0, d0 // dim_per_group, d0 + tl.arange(0, BLOCK_D), offs_n, offs_n < N


@triton.jit
def _load_tile(ptrs, mask, MASK_T: tl.constexpr):
    # Full chunks load without a time mask: a mask that varies along time blocks vector loads.
    if MASK_T:
        return tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    else:
        return tl.load(ptrs).to(tl.float32)


@triton.jit
def _store_tile(ptrs, value, mask, MASK_T: tl.constexpr):
    if MASK_T:
        tl.store(ptrs, value.to(ptrs.dtype.element_ty), mask=mask)
    else:
        tl.store(ptrs, value.to(ptrs.dtype.element_ty))


# ----------------------------------------------------------------------------------------------
# host side


def pow2_divisor(n: int, cap: int) -> int:
    """Largest power of two <= cap that divides n (>= 1)."""
    p = 1
    while p * 2 <= cap and n % (p * 2) == 0:
        p *= 2
    return p


def strides(t: torch.Tensor | None, ndim: int) -> tuple:
    return tuple(t.stride()) if t is not None else (0,) * ndim


def _needs_idx64(*tensors) -> bool:
    """True where an offset inside one batch row (over its directions) could pass 2**31 elements (the batch
    offset is int64 in every kernel).

    No offset inside a tensor passes its storage's size, so tensors on storages of fewer elements are
    answered without looking at their strides (host time: this runs twice per scan call)."""
    for t in tensors:
        if t is None or t.untyped_storage().nbytes() < (2**31 - 1) * t.element_size():
            continue
        span = 0
        for size, stride in zip(t.shape[1:], t.stride()[1:]):
            span += (size - 1) * abs(stride)
        if span >= 2**31 - 1:
            return True
    return False


def check_device(u: torch.Tensor) -> None:
    if u.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"selective_scan backend='triton': tensors are on {u.device}; the Triton kernels need CUDA "
            "tensors (or TRITON_INTERPRET=1, set before vssm is imported, to run them on the CPU)"
        )


def to_f32(t: torch.Tensor) -> torch.Tensor:
    """t in float32: a dtype check first, as a `.to` that returns its input still costs a dispatch of host time."""
    return t if t.dtype == torch.float32 else t.to(torch.float32)


class Prep:
    """Shapes, parameter vectors and the order table of one call in the op's normal form."""

    def __init__(self, u, delta, A, B, C, D, z, delta_bias, index, scale=1.0):
        self.batch, self.K, self.dim, self.L = u.shape
        self.rows = self.batch * self.K
        self.N = A.shape[-1]
        self.B, self.C = B, C
        self.G = B.shape[2]
        self.dim_per_group = self.dim // self.G
        self.NP = next_pow2(max(self.N, 1))
        self._A = to_f32(A)  # (K, D, N), any strides: each kernel family takes the layout it reads
        if D is None or delta_bias is None:  # (a fill launch per call only where one is absent)
            zeros = torch.zeros((self.K, self.dim), device=u.device, dtype=torch.float32)
        self.D = zeros if D is None else to_f32(D).contiguous()
        self.bias = zeros if delta_bias is None else to_f32(delta_bias).contiguous()
        self.gather = index is not None
        self.index = index if index is not None else self._A  # placeholder pointer when not gathering
        self.scale = float(scale)
        self.idx64 = _needs_idx64(u, delta, z, B, C)

    @property
    def A(self) -> torch.Tensor:
        """A (K, D, N) contiguous, as the chunk kernels read it (a copy only when the caller's is not)."""
        if not self._A.is_contiguous():
            self._A = self._A.contiguous()
        return self._A

    @property
    def A_t(self) -> torch.Tensor:
        """A as (K, N, D) contiguous, as the walking forward reads it (no copy when the caller's A (K, D, N) has
        its channels contiguous, as the Vim mixer builds it when it walks)."""
        return self._A.transpose(1, 2).contiguous()

    def block_d(self, dn: int, warps: int) -> tuple[int, int]:
        """Channels per program and warps: lanes cover (channels, states) so time stays in-thread."""
        bd = pow2_divisor(self.dim_per_group, max(1, dn // self.NP))
        return bd, max(1, min(warps, bd * self.NP // 32))

    def slices(self, block_d: int, programs_per_slice: int, want: int) -> int:
        """Channel slices per group (a power of two up to 8) until the launch has `want` programs.

        More slices fill the GPU but each adds one (rows, G, N, L) partial of dB and dC.
        """
        blocks, n = self.dim_per_group // block_d, 1
        while self.rows * self.G * n * programs_per_slice < want and blocks % (n * 2) == 0 and n < 8:
            n *= 2
        return n


def new_grad(u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An empty (batch, K, D, L) gradient in u's memory layout (token-major when u is)."""
    return new_like_layout(u, tuple(u.shape), dtype)


class Grads:
    """Gradient outputs of a backward and the fp32 partials its kernels write instead of atomics.

    du/ddelta are (batch, K, D, L) in u's layout and dz in z's, one per direction (autograd sums a shared input's);
    dA/dD/d(delta_bias) partials are (rows, parts, D[, N]) and dB/dC partials (rows, slices, G, N, L), in
    float32 where there are several slices to sum and in B's / C's dtype where there is one;
    `finish` reduces them with `torch.sum`, so results are bit-identical run to run.
    """

    def __init__(self, p: Prep, u, delta, z, parts: int, n_slices: int):
        dev, f32 = u.device, torch.float32
        self.p = p
        self.du = new_grad(u, u.dtype)
        self.ddelta = new_grad(u, delta.dtype)
        self.dz = new_grad(z, z.dtype) if z is not None else None  # in z's layout (the gate's consumer's)
        self.dA = torch.empty((p.rows, parts, p.dim, p.N), device=dev, dtype=f32)
        # dD and d(delta_bias) partials share one buffer, so `finish` reduces both with one sum; the kernels read
        # each as (rows, parts, D) contiguous. The second starts 16-byte aligned, as the first (no kernel variant for
        # an unaligned pointer): padded where rows x parts x D is not a multiple of 4
        n = p.rows * parts * p.dim
        if n % 4 == 0:
            self.dD_dbias = torch.empty((2, p.batch, p.K, parts, p.dim), device=dev, dtype=f32)
        else:
            flat = torch.empty((2, cdiv(n, 4) * 4), device=dev, dtype=f32)
            self.dD_dbias = flat[:, :n].view(2, p.batch, p.K, parts, p.dim)
        self.dD, self.dbias = self.dD_dbias.unbind(0)
        # one slice: every element of dB / dC is written once, so the kernel stores it in B's / C's dtype
        # (rounded as `.to` would round the float32 value) and no conversion follows
        self.dB = torch.empty((p.rows, n_slices, p.G, p.N, p.L), device=dev, dtype=p.B.dtype if n_slices == 1 else f32)
        self.dC = torch.empty((p.rows, n_slices, p.G, p.N, p.L), device=dev, dtype=p.C.dtype if n_slices == 1 else f32)

    def pointers(self) -> tuple:
        """The output tensors in the kernels' order (du, ddelta, dz, dA, dB, dC, dD, dbias)."""
        return (self.du, self.ddelta, self.dz if self.dz is not None else self.du,
                self.dA, self.dB, self.dC, self.dD, self.dbias)

    def strides(self) -> tuple:
        """(batch, K, D, L) strides shared by du and ddelta (u's layout)."""
        return tuple(self.du.stride())

    def dz_strides(self) -> tuple:
        """(batch, K, D, L) strides of dz (z's layout: token-major for a gate sliced from a Linear's output,
        whose gradient then joins the other half's without a transposing copy)."""
        return tuple(self.dz.stride()) if self.dz is not None else self.strides()

    def finish(self, D, delta_bias) -> list[torch.Tensor | None]:
        """Gradients for (u, delta, A, B, C, D, z, delta_bias) in normal form; None for absent inputs."""
        p = self.p

        def by_direction(t):  # (rows, ...) -> summed over batch rows: (K, ...)
            return t.view(p.batch, p.K, *t.shape[1:]).sum(dim=(0, 2))

        dB = self.dB[:, 0] if self.dB.shape[1] == 1 else self.dB.sum(dim=1)
        dC = self.dC[:, 0] if self.dC.shape[1] == 1 else self.dC.sum(dim=1)
        dB = dB.view(p.batch, p.K, p.G, p.N, p.L)
        dC = dC.view(p.batch, p.K, p.G, p.N, p.L)
        dD = dbias = None
        if D is not None or delta_bias is not None:
            both = self.dD_dbias.sum(dim=(1, 3))  # (2, K, D)
            dD = both[0] if D is not None else None
            dbias = both[1] if delta_bias is not None else None
        return [self.du, self.ddelta, by_direction(self.dA), dB, dC, dD, self.dz, dbias]
