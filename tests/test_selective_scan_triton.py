"""The Triton selective scan on the CPU, under TRITON_INTERPRET=1, against the float64 step loop.

TRITON_INTERPRET is read when `@triton.jit` decorates, and other test modules import vssm first, so
the kernels run in one child process started with the variable set (this file doubles as its
script, printing one JSON object); each test below checks one case of what the child computed.

Every case draws its inputs with `cases.make_inputs` (rounded to the case's dtype), runs the kernels
and compares the output, the last states and every gradient with `selective_scan_naive` evaluated in
float64 on the same values. Cases call the kernels in the op's normal form directly
(`triton_forward` + `triton_backward_chunks`, or `triton_backward_walk` for N = 1, with or without
the chunk-start states the forward keeps) with tiny tiles (T = 8 steps) so a few dozen steps cover
several chunks, a partial last chunk, time segments, channel slices and both multi-direction forward
layouts (one program looping over the directions, or one per direction summed afterwards); the "op"
cases go through `selective_scan(..., backend="triton")` and autograd.

Run as a script (``TRITON_INTERPRET=1 python tests/test_selective_scan_triton.py [case ...]``) it
prints each case's wall and CPU seconds to stderr; all cases take ~100-120 s of CPU.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest
from interpreted import run_as_script, run_code

# the module fixture's child (about ten minutes on a 2-core machine) starts when collection ends (conftest.py)
START_EARLY = True

TOL = {"float64": 1e-10, "float32": 1e-5, "float16": 5e-3, "bfloat16": 2e-2}
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
VMAMBA = ["rows", "cols", "rows_reverse", "cols_reverse"]
SNAKE = ["snake_rows", "snake_cols", "snake_rows_reverse", "snake_cols_reverse"]
# tiny tiles: chunks of 8 steps, 16 (channel x state) lanes per program
TINY = dict(fwd_T=8, fwd_T_n1=8, bwd_T=8, bwd_T_n1=8, fwd_dn=16, bwd_dn=16, bwd_dn_grouped=16, carry_dn=16,
            walk_T=8, walk_tile=32, fwd_min_programs=1, bwd_target_programs=1, fwd_T_wide=8, fwd_dn_wide=64,
            fwd_warps_wide=2, fwd_walk=False)  # fwd_walk pinned: VSSM_SCAN_FWD must not change the cases
# N >= 16: wider programs (4 channels of 16 states), else the interpreter walks one channel at a time
WIDE = dict(fwd_dn=64, bwd_dn=64, bwd_dn_grouped=64, carry_dn=64, fwd_dn_wide=128)


def C(name, shape, **kw):
    """One case: shape = (batch, dim, L, N, G). Keywords (defaults in brackets):
    orders [None: single direction]: list of order names, "perm" stands for a fixed random permutation;
    grid; shared [()]: inputs shared by the directions; z, D, bias, softplus [True]; dtype ["float32"];
    token_major [False]: u, delta, z stored (batch, L, D); z_token_major [False]: z alone so;
    B3 [False]: 3-D B/C; strided [False]: u/delta/z every other token of wider tensors and B/C stored
    (batch, L, G, N); combine ["sum"];
    poison: (input name, index, value) put into sample 0: sample 1 must not change by a bit (kernel modes);
    mode ["kernels"]: triton_forward + triton_backward_chunks | "walk": + triton_backward_walk (N = 1),
    recomputing the chunk-start states | "walk_states": the walk on the states the forward kept |
    "op": selective_scan(backend="triton") and autograd, with `default_tiles` overriding the op's
    DEFAULT_TILES and `expect_walk` (None: not checked; True: the op walked on kept states; False: it
    did not walk);
    tiles: overrides of TINY (the kernel modes); xfail: the reason of a known failure."""
    return dict(name=name, shape=shape, **kw)


# multi-direction forward: one program loops over the K directions (else one program per direction
# into a (batch, K, D, L) buffer summed afterwards)
LOOP = dict(fwd_loop_min_programs=1, fwd_walk_loop_min_programs=1)  # the chunk kernel's threshold and the walk's
# the walking forward (states of a channel in one thread), 4 channels per program
WALK = dict(fwd_walk=True, fwd_walk_bd=4)
SMID = dict(fwd_smid=True)  # the chunk forward with states-middle tiles wherever it can run
TWO_PASS = dict(carry_two_pass_min_chunks=1)  # the forward's carry in two passes from one chunk on

CASES = [
    # ---- one direction: options, groups, states, lengths
    C("base", (2, 4, 21, 3, 1)),
    C("no_options", (2, 4, 9, 3, 1), z=False, D=False, bias=False, softplus=False),
    C("z_only", (1, 4, 17, 2, 1), D=False, bias=False, softplus=False),
    C("softplus_only", (1, 4, 17, 2, 1), z=False, D=False, bias=False),
    C("groups", (1, 8, 19, 4, 2)),
    C("n1_g4_walk", (2, 8, 13, 1, 4), mode="walk"),
    C("n1_3d_bc_walk_states", (2, 4, 11, 1, 1), B3=True, mode="walk_states"),
    C("n16_g1", (1, 8, 12, 16, 1), tiles=WIDE),
    C("n16_g4", (1, 4, 11, 16, 4), tiles=WIDE),
    C("n64_g1", (1, 2, 9, 64, 1), tiles=WIDE),  # short sequence: the backward's short tiles (Tiles.bwd_*_short)
    C("n64_g1_short_chunks", (2, 4, 11, 64, 1), tiles={**WIDE, "bwd_T_short": 4}),  # three chunks, the last partial
    C("n64_g1_long_tiles", (1, 2, 9, 64, 1), tiles={**WIDE, "bwd_short_max_L": 4}),  # the regular tiles at N = 64
    C("L1", (2, 4, 1, 4, 2)),
    C("L1_n1_walk_states", (2, 8, 1, 1, 2), mode="walk_states"),
    C("L_multiple_of_T", (1, 4, 16, 3, 1)),
    # few programs: the forward splits time into segments (carry pass), the backward adds channel slices
    C("segments_slices", (1, 16, 40, 2, 1), tiles=dict(fwd_min_programs=64, bwd_target_programs=64)),
    C("segments_n1_slices", (1, 16, 29, 1, 1), tiles=dict(fwd_min_programs=64, bwd_target_programs=64, bwd_dn=4)),
    # segments and kept states: every other forward chunk start is a walk chunk start (walk_T = 2 x T)
    C("segments_n1_walk_states_every2", (1, 8, 37, 1, 2), mode="walk_states",
      tiles=dict(fwd_min_programs=64, walk_T=16, walk_tile=64)),
    # two segments of four chunks (the last partial): their start states from the carry's two passes, local
    # segments of 4, 2 and 1 chunks side by side chained by the combine (Tiles.carry_two_pass_min_chunks,
    # carry_min_programs; the other segment cases walk the chunks in one pass)
    C("segments_local_whole", (1, 16, 61, 2, 1), tiles=dict(fwd_min_programs=4, carry_min_programs=1, **TWO_PASS)),
    C("segments_local_halves", (1, 16, 61, 2, 1), tiles=dict(fwd_min_programs=4, carry_min_programs=4, **TWO_PASS)),
    C("segments_local_chunks", (1, 16, 61, 2, 1), tiles=dict(fwd_min_programs=4, **TWO_PASS)),
    C("multi_segments_local", (1, 4, 61, 2, 1), orders=["perm", "reverse"], shared=("u",),
      tiles=dict(fwd_min_programs=4, carry_min_programs=4, **TWO_PASS)),
    C("idx64_multi_segments_local", (1, 4, 61, 2, 1), orders=["perm", "reverse"], shared=("u",),
      tiles=dict(fwd_min_programs=4, carry_min_programs=4, **TWO_PASS), idx64=True),
    C("fwalk_segments_local", (1, 16, 61, 2, 1),
      tiles=dict(fwd_min_programs=8, carry_min_programs=4, **TWO_PASS, **WALK)),
    C("n1_walk_states_two_pass", (1, 8, 37, 1, 2), mode="walk", tiles=TWO_PASS),  # the N = 1 backward's states
    C("reverse_single_order", (1, 4, 19, 3, 1), orders=["reverse"], tiles=dict(bwd_target_programs=64, bwd_dn=8)),
    C("strided", (2, 4, 14, 3, 2), strided=True),
    C("token_major", (2, 8, 13, 2, 1), token_major=True),
    C("z_token_major_only", (2, 4, 13, 3, 1), z_token_major=True),
    C("bf16", (2, 4, 21, 3, 1), dtype="bfloat16"),
    C("fp16_groups", (1, 4, 21, 3, 2), dtype="float16"),
    C("n1_bf16_walk_strided", (2, 8, 19, 1, 2), dtype="bfloat16", strided=True, mode="walk"),
    C("op_autograd", (2, 4, 10, 3, 1), mode="op"),
    # no gradient reaches the last states (the usual call): dlast None down to the kernels (HAS_DLAST=False)
    C("no_dlast_op", (2, 4, 10, 3, 1), mode="op", no_dlast=True),
    C("no_dlast_chunks_vim", (1, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean",
      tiles=WIDE, no_dlast=True),
    C("no_dlast_n1_walk", (1, 8, 19, 1, 2), mode="walk", no_dlast=True),
    C("no_dlast_vmamba_walk_states", (1, 8, 21, 1, 1), orders=VMAMBA, grid=(7, 3), shared=("u",), z=False,
      mode="walk_states", no_dlast=True),
    C("no_dlast_vmamba_op_keep_states", (1, 4, 70, 1, 1), orders=VMAMBA, grid=(7, 10), shared=("u",), z=False,
      mode="op", default_tiles=dict(walk_min_programs=1), expect_walk=True, no_dlast=True),
    C("op_n1_walk_keep_states", (1, 8, 70, 1, 2), mode="op", default_tiles=dict(walk_min_programs=1),
      expect_walk=True),
    C("float64_reference_path", (1, 4, 9, 3, 1), dtype="float64", mode="op"),
    # empty tensors take the reference path, forward and backward
    C("empty_L0", (2, 4, 0, 3, 1), mode="op"),
    # ---- several directions
    # Vim: natural + reverse, everything per direction except z, outputs averaged
    C("vim_mean_loop", (1, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean",
      tiles={**WIDE, **LOOP}),
    C("vim_mean_n1_g4_walk", (1, 8, 13, 1, 4), orders=["natural", "reverse"], shared=("z",), combine="mean",
      mode="walk"),
    C("vim_mean_op", (1, 4, 11, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean", mode="op"),
    # every direction in natural order: no order table
    C("natural_twice_loop", (1, 4, 11, 3, 1), orders=["natural", "rows"], tiles=LOOP),
    # VMamba: the four grid orders, shared u, no z, odd H and W
    C("vmamba_n1_walk", (1, 8, 15, 1, 1), orders=VMAMBA, grid=(3, 5), shared=("u",), z=False, mode="walk"),
    C("vmamba_n1_walk_states_loop", (1, 8, 21, 1, 1), orders=VMAMBA, grid=(7, 3), shared=("u",), z=False,
      mode="walk_states", tiles=LOOP),
    C("vmamba_n1_g4_chunks", (1, 4, 15, 1, 4), orders=["cols", "rows_reverse"], grid=(3, 5), shared=("u",), z=False),
    C("vmamba_n16_g4", (1, 4, 8, 16, 4), orders=["cols", "rows_reverse"], grid=(2, 4), shared=("u",), z=False,
      tiles=WIDE),
    C("vmamba_n64", (1, 2, 8, 64, 1), orders=["rows", "cols_reverse"], grid=(2, 4), shared=("u",), z=False,
      tiles=WIDE),
    C("vmamba_op_n1_walk_keep_states", (1, 4, 70, 1, 1), orders=VMAMBA, grid=(7, 10), shared=("u",), z=False,
      mode="op", default_tiles=dict(walk_min_programs=1), expect_walk=True),
    # token-major N = 1 runs the chunk-parallel backward even where channel-major would walk
    C("vmamba_token_major_op", (1, 4, 15, 1, 1), orders=VMAMBA, grid=(3, 5), shared=("u",), z=False,
      token_major=True, mode="op", default_tiles=dict(walk_min_programs=1), expect_walk=False),
    C("snake_loop", (1, 4, 15, 2, 1), orders=SNAKE, grid=(5, 3), shared=("u", "z", "A", "D"), tiles=LOOP),
    # ---- a NaN / inf in one sample leaves the other sample's outputs and gradients bit-identical
    C("poison_nan_delta", (2, 4, 21, 3, 1), poison=("delta", (0, 1, 5), float("nan"))),
    C("poison_inf_u_vim_loop", (2, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean",
      tiles={**WIDE, **LOOP}, poison=("u", (0, 1, 2, 4), float("inf"))),
    C("poison_nan_B_n1_walk", (2, 8, 13, 1, 4), mode="walk", poison=("B", (0, 1, 0, 6), float("nan"))),
    C("poison_inf_z_segments", (2, 16, 40, 2, 1), tiles=dict(fwd_min_programs=64, bwd_target_programs=64),
      poison=("z", (0, 3, 7), float("-inf"))),
    C("perm_tensor", (1, 4, 13, 3, 1), orders=["perm", "reverse"], shared=("delta_bias", "B")),
    C("multi_segments", (1, 4, 40, 2, 1), orders=["perm", "reverse"], shared=("u",),
      tiles=dict(fwd_min_programs=64)),
    C("token_major_multi", (1, 4, 13, 4, 1), orders=["natural", "reverse"], shared=("u",), token_major=True),
    C("token_major_multi_loop", (1, 4, 11, 16, 1), orders=["reverse", "perm"], shared=("z",),
      token_major=True, tiles={**WIDE, **LOOP}),
    C("multi_z_token_major_only", (1, 4, 13, 3, 1), orders=["natural", "reverse"], shared=("z",),
      z_token_major=True),
    C("multi_strided", (1, 4, 13, 3, 2), orders=["reverse", "perm"], strided=True, shared=("C", "z")),
    C("multi_L1_loop", (2, 4, 1, 4, 2), orders=["reverse", "perm"], tiles=LOOP),
    C("multi_bf16", (1, 4, 17, 4, 1), orders=["natural", "reverse"], shared=("z",), dtype="bfloat16"),
    C("multi_fp16_n1_walk", (1, 8, 15, 1, 1), orders=VMAMBA, grid=(3, 5), shared=("u",), z=False,
      dtype="float16", mode="walk"),
    # ---- the walking forward (Tiles.fwd_walk); the backward is the chunk-parallel one as above
    C("fwalk_base", (2, 4, 21, 3, 1), tiles=WALK),
    C("fwalk_no_options", (2, 4, 9, 3, 1), z=False, D=False, bias=False, softplus=False, tiles=WALK),
    C("fwalk_groups", (1, 8, 19, 4, 2), tiles=WALK),
    C("fwalk_n16", (1, 8, 12, 16, 1), tiles={**WIDE, **WALK}),
    C("fwalk_n16_token_major", (2, 8, 13, 16, 1), token_major=True, tiles={**WIDE, **WALK}),
    C("fwalk_n12_masked", (1, 8, 12, 12, 1), tiles={**WIDE, **WALK}),  # padded to 16 states: the masked loads
    C("fwalk_n32_takes_the_chunks", (1, 4, 9, 32, 1), tiles={**WIDE, **WALK}),  # past fwd_walk_max_np
    C("fwalk_L1", (2, 4, 1, 4, 2), tiles=WALK),
    C("fwalk_segments", (1, 16, 40, 2, 1), tiles=dict(fwd_min_programs=64, **WALK)),
    # two segments of three chunks, the second cut short (chunks 3-4 of 8 steps, the last partial)
    C("fwalk_segments_partial", (1, 16, 37, 3, 1), tiles=dict(fwd_min_programs=8, **WALK)),
    C("fwalk_strided_bf16", (2, 4, 14, 3, 2), strided=True, dtype="bfloat16", tiles=WALK),
    C("fwalk_vim_mean_loop", (1, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean",
      tiles={**WIDE, **LOOP, **WALK}),
    C("fwalk_vim_mean_per_direction", (1, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",),
      combine="mean", tiles={**WIDE, **WALK}),
    C("fwalk_multi_segments", (1, 4, 40, 2, 1), orders=["perm", "reverse"], shared=("u",),
      tiles=dict(fwd_min_programs=64, **WALK)),
    C("fwalk_snake_loop", (1, 4, 15, 2, 1), orders=SNAKE, grid=(5, 3), shared=("u", "z", "A", "D"),
      tiles={**LOOP, **WALK}),
    C("fwalk_poison_inf_u_vim_loop", (2, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",),
      combine="mean", tiles={**WIDE, **LOOP, **WALK}, poison=("u", (0, 1, 2, 4), float("inf"))),
    C("fwalk_poison_nan_delta_segments", (2, 16, 40, 2, 1), tiles=dict(fwd_min_programs=64, **WALK),
      poison=("delta", (0, 3, 7), float("nan"))),
    # ---- the chunk forward with states-middle tiles (Tiles.fwd_smid): 8 channels x 4 lanes of states per warp
    C("smid_n16", (1, 8, 37, 16, 1), tiles=SMID, chunk_T=16),  # few programs: chunks twice as long (3, one partial)
    C("smid_n16_short_chunks", (1, 8, 37, 16, 1), tiles={**SMID, "fwd_smid_long_max_programs": 0}, chunk_T=8),
    C("smid_n8_g2_token_major", (2, 16, 70, 8, 2), token_major=True, tiles=SMID, chunk_T=32),  # 3 chunks
    C("smid_n12_masked", (1, 8, 19, 12, 1), tiles=SMID),  # padded to 16 states
    C("smid_n16_four_channels", (1, 4, 13, 16, 1), tiles=SMID),  # 4 channels x 8 lanes of states
    C("smid_n16_odd_channels_fall_back", (1, 3, 9, 16, 1), tiles=SMID),  # one channel x 16 lanes: time would cross lanes
    C("smid_n4_falls_back", (1, 8, 9, 4, 1), tiles=SMID),  # below fwd_smid_min_np
    C("smid_L1", (2, 8, 1, 16, 1), tiles=SMID),
    C("smid_L_multiple_of_T", (1, 8, 32, 16, 1), tiles=SMID),
    C("smid_vim_mean_loop", (2, 8, 37, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean",
      tiles={**SMID, **LOOP}),
    C("smid_vim_per_direction_token_major", (2, 8, 35, 16, 1), orders=["natural", "reverse"], shared=("z",),
      combine="mean", token_major=True, tiles=SMID),
    C("smid_n8_loop", (2, 8, 70, 8, 1), orders=["natural", "reverse"], tiles={**SMID, **LOOP}, chunk_T=32),
    C("smid_perm_gather", (1, 8, 35, 16, 1), orders=["perm", "reverse"], shared=("u",), tiles=SMID),
    C("smid_strided_bf16", (2, 8, 70, 8, 1), strided=True, dtype="bfloat16", tiles=SMID),
    C("smid_fp16_no_options", (1, 8, 21, 16, 1), dtype="float16", z=False, D=False, bias=False, softplus=False,
      tiles=SMID),
    C("smid_poison_inf_u", (2, 8, 35, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean",
      tiles=SMID, poison=("u", (0, 1, 2, 4), float("inf"))),
    C("smid_poison_nan_delta_loop", (2, 8, 35, 16, 1), orders=["natural", "reverse"], tiles={**SMID, **LOOP},
      poison=("delta", (0, 0, 3, 6), float("nan"))),
    C("idx64_smid_loop", (2, 8, 35, 16, 1), orders=["natural", "reverse"], tiles={**SMID, **LOOP}, idx64=True),
    # int64 direction offsets (IDX64, forced: the directions of a large tensor stored outside the batch)
    C("idx64_vim_mean_loop", (2, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",), combine="mean",
      tiles={**WIDE, **LOOP}, idx64=True),
    C("idx64_fwalk_vim_per_direction", (2, 4, 13, 16, 1), orders=["natural", "reverse"], shared=("z",),
      combine="mean", tiles={**WIDE, **WALK}, idx64=True),
    C("idx64_fwalk_loop", (1, 4, 11, 3, 1), orders=["natural", "reverse"], tiles={**LOOP, **WALK}, idx64=True),
    C("idx64_vmamba_n1_walk", (1, 8, 15, 1, 1), orders=VMAMBA, grid=(3, 5), shared=("u",), z=False, mode="walk",
      idx64=True),
    C("idx64_multi_segments", (1, 4, 40, 2, 1), orders=["perm", "reverse"], shared=("u",),
      tiles=dict(fwd_min_programs=64), idx64=True),
]


def _present(case) -> list[str]:
    flags = dict(z=case.get("z", True), D=case.get("D", True), delta_bias=case.get("bias", True))
    return [n for n in NAMES if flags.get(n, True)]


# ----------------------------------------------------------------------------------------------
# the child process


def _inputs(case):
    """User-level arguments of the case, the permutation orders resolved."""
    import torch

    from vssm.kernels.selective_scan.cases import make_inputs

    batch, dim, L, N, G = case["shape"]
    orders = case.get("orders")
    dtype = getattr(torch, case.get("dtype", "float32"))
    K = None if orders is None else len(orders)
    seed = sum(map(ord, case["name"]))
    inp = make_inputs(batch, dim, L, N, G, K=K, shared=case.get("shared", ()), dtype=dtype,
                      z=case.get("z", True), D=case.get("D", True), delta_bias=case.get("bias", True),
                      token_major=case.get("token_major", False), seed=seed)
    if not case.get("softplus", True):
        # delta (+ bias) is the step size itself and must be small and positive
        inp["delta"] = 0.1 * inp["delta"].abs()
        if inp["delta_bias"] is not None:
            inp["delta_bias"] = 0.01 * inp["delta_bias"].abs()
    if dtype == torch.float64:  # A, D and delta_bias too: their gradients come back in their own dtype
        inp = {n: (None if t is None else t.double()) for n, t in inp.items()}
    if case.get("z_token_major"):  # same values, (batch, [K,] L, D) storage
        inp["z"] = inp["z"].transpose(-1, -2).contiguous().transpose(-1, -2)
    if case.get("B3"):
        inp["B"], inp["C"] = inp["B"][:, 0], inp["C"][:, 0]
    if case.get("strided"):
        def every_other(t):  # same values, every other token of a wider tensor
            if t is None:
                return None
            wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
            wide[..., ::2] = t
            return wide[..., ::2]

        def token_last(t):  # (..., G, N, L) stored as (..., L, G, N)
            return t.movedim(-1, -3).contiguous().movedim(-3, -1)

        for n in ("u", "delta", "z"):
            inp[n] = every_other(inp[n])
        inp["B"], inp["C"] = token_last(inp["B"]), token_last(inp["C"])
    if orders is not None:
        perm = torch.randperm(L, generator=torch.Generator().manual_seed(seed))
        orders = [perm if o == "perm" else o for o in orders]
    return inp, orders


def _run_case(case) -> dict:
    import torch

    from vssm.kernels.selective_scan import (
        op,
        selective_scan,
        selective_scan_naive,
        triton_bwd_n1,
        triton_common,
    )
    from vssm.kernels.selective_scan.cases import rel_error
    from vssm.kernels.selective_scan.triton_bwd import triton_backward_chunks
    from vssm.kernels.selective_scan.triton_bwd_n1 import triton_backward_walk
    from vssm.kernels.selective_scan.triton_common import Tiles
    from vssm.kernels.selective_scan.triton_fwd import triton_forward

    batch, dim, L, N, G = case["shape"]
    inp, orders = _inputs(case)
    grid, combine, softplus = case.get("grid"), case.get("combine", "sum"), case.get("softplus", True)
    mode = case.get("mode", "kernels")
    K = 1 if orders is None else len(orders)
    gen = torch.Generator().manual_seed(7)
    dout = torch.randn(batch, dim, L, generator=gen, dtype=torch.float64)
    dlast = torch.randn(batch, K, dim, N, generator=gen, dtype=torch.float64)
    if case.get("no_dlast"):  # only out's gradient: the op's backward gets no dlast at all
        dlast = None
    dlast_user = None if dlast is None else dlast[:, 0] if orders is None else dlast
    multi = dict(orders=orders, grid=grid, combine=combine) if orders is not None else {}

    # oracle: the step loop in float64 on the same (rounded) values
    leaves = {n: (None if t is None else t.detach().double().requires_grad_(True)) for n, t in inp.items()}
    out_r, last_r = selective_scan_naive(**leaves, delta_softplus=softplus, return_last_state=True, **multi)
    wrt = [leaves[n] for n in NAMES if leaves[n] is not None]
    pairs = [(o, g) for o, g in ((out_r, dout), (last_r, dlast_user)) if o.requires_grad and g is not None]
    ref = torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True) if pairs else []
    ref = dict(zip([n for n in NAMES if leaves[n] is not None], ref))
    ref = {n: (torch.zeros_like(leaves[n]) if g is None else g) for n, g in ref.items()}

    walks, walk_modes, chunk_modes = [], [], []
    dz_layouts = []  # kernels modes: whether the backward wrote dz token-major
    if mode == "op":
        cast = {n: (None if t is None else t.detach().clone().requires_grad_(True)) for n, t in inp.items()}
        if case.get("token_major"):  # clone keeps the token-major strides
            assert cast["u"].stride(1) == 1
        # the op reads DEFAULT_TILES (walk threshold, kept-states stride) and imports the walk at each call
        walk, defaults = triton_bwd_n1.triton_backward_walk, triton_common.DEFAULT_TILES

        def spy(*a, **k):
            walks.append(k.get("states") is not None)
            return walk(*a, **k)

        triton_bwd_n1.triton_backward_walk = spy
        triton_common.DEFAULT_TILES = dataclasses.replace(defaults, **case.get("default_tiles", {}))
        try:
            out, last = selective_scan(**cast, delta_softplus=softplus, return_last_state=True, backend="triton",
                                       **multi)
            wrt2 = [cast[n] for n in NAMES if cast[n] is not None]
            pairs = [(o, g) for o, g in ((out, dout), (last, dlast_user)) if o.requires_grad and g is not None]
            grads = torch.autograd.grad([o for o, _ in pairs], wrt2, [g.to(o.dtype) for o, g in pairs],
                                        allow_unused=True) if pairs else []
        finally:
            triton_bwd_n1.triton_backward_walk, triton_common.DEFAULT_TILES = walk, defaults
        grads = dict(zip([n for n in NAMES if cast[n] is not None], grads))
        grads = {n: grads.get(n) for n in NAMES}
        grads = {n: (torch.zeros_like(cast[n]) if g is None and cast[n] is not None else g) for n, g in grads.items()}
    else:
        tiles = Tiles(**{**TINY, **case.get("tiles", {})})
        from vssm.kernels.selective_scan import triton_fwd

        class _Spy:  # hands each launch's keyword arguments to `record`, then runs the kernel
            def __init__(self, kernel, record):
                self.kernel, self.record = kernel, record

            def __getitem__(self, grid):
                launch = self.kernel[grid]

                def call(*a, **k):
                    self.record(k)
                    return launch(*a, **k)

                return call

        def walk_launch(k):  # the walking forward: its MODE and whether the state loads went unmasked
            walks.append("fwd_walk")
            walk_modes.append((k["MODE"], k["EVEN_N"]))

        walk_kernel, chunk_kernel = triton_fwd._fwd_walk_kernel, triton_fwd._fwd_kernel
        # the chunk forward: its tile order (SMID), chunk length and MODE
        triton_fwd._fwd_walk_kernel = _Spy(walk_kernel, walk_launch)
        triton_fwd._fwd_kernel = _Spy(chunk_kernel, lambda k: chunk_modes.append((k["SMID"], k["T"], k["MODE"])))

        def kernels(inp):
            user = [inp[n] for n in NAMES]
            if orders is None:
                args, index = list(op._normalize_single(*user)), None
            else:
                *args, index = op._normalize_orders(*user, orders, grid)
            scale = 1.0 / K if combine == "mean" else 1.0
            keep = tiles.walk_T if mode == "walk_states" else 0
            out, last, states = triton_forward(*args, index, softplus, scale, states_T=keep, tiles=tiles)
            assert (states is not None) == bool(keep)
            dout_k = op.new_like_layout(args[0], tuple(dout.shape), inp["u"].dtype).copy_(dout)
            dlast_k = None if dlast is None else dlast.float()
            if mode == "kernels":
                normal = triton_backward_chunks(dout_k, dlast_k, *args, index, softplus, scale, tiles=tiles)
            else:
                normal = triton_backward_walk(dout_k, dlast_k, *args, index, softplus, scale, states=states,
                                              tiles=tiles)
            dz_layouts.append(normal[6] is not None and normal[6].stride(2) == 1)  # before any sum over K
            grads = {}
            for n, g in zip(NAMES, normal):  # normal form -> the user's shapes (a shared input sums over K)
                t = inp[n]
                if g is None or t is None:
                    grads[n] = g
                    continue
                if tuple(g.shape) != tuple(t.shape):
                    g = g.sum(dim=0 if n in ("A", "D", "delta_bias") else 1).reshape(t.shape)
                grads[n] = g
            if orders is None:
                last = last[:, 0]
            return out, last, grads

        needs_idx64 = triton_common._needs_idx64
        idx64_seen = []
        if case.get("idx64"):  # every Prep asks for int64 offsets
            triton_common._needs_idx64 = lambda *t: idx64_seen.append(True) or True
        try:
            out, last, grads = kernels(inp)
        finally:
            triton_fwd._fwd_walk_kernel, triton_fwd._fwd_kernel = walk_kernel, chunk_kernel
            triton_common._needs_idx64 = needs_idx64
        if case.get("idx64"):
            assert idx64_seen, "no Prep asked for int64 offsets"
        if "poison" in case:  # one bad value in sample 0: sample 1's results must not change by a bit
            name, index, value = case["poison"]
            bad = {n: (None if t is None else t.clone()) for n, t in inp.items()}
            bad[name][index] = value
            out_p, last_p, grads_p = kernels(bad)
            same = [torch.equal(out_p[1], out[1]), torch.equal(last_p[1], last[1]), not torch.isfinite(out_p[0]).all()]
            same += [torch.equal(grads_p[n][1], grads[n][1]) for n in ("u", "delta", "z", "B", "C")
                     if grads[n] is not None and inp[n].shape[0] == batch]
            isolation = 0.0 if all(same) else 1.0
    res = {
        "out": rel_error(out, out_r),
        **({"isolation": isolation} if "poison" in case else {}),
        "last": rel_error(last, last_r) if tuple(last.shape) == tuple(last_r.shape) else f"shape {tuple(last.shape)}",
        "meta": {
            "out_dtype": str(out.dtype).replace("torch.", ""),
            "out_shape": list(out.shape),
            "last_dtype": str(last.dtype).replace("torch.", ""),
            "out_token_major": bool(L > 1 and dim > 1 and out.stride(1) == 1),
            "du_dtype": str(grads["u"].dtype).replace("torch.", ""),
            # dz comes back in z's layout (token-major for a gate sliced from a Linear's output)
            "dz_token_major": bool(grads["z"] is not None and L > 1 and dim > 1
                                   and (dz_layouts[0] if dz_layouts else grads["z"].stride(-2) == 1)),
            "walks": walks,
            "walk_modes": walk_modes,
            "chunk_modes": chunk_modes,
        },
    }
    for n in NAMES:
        g, gr = grads[n], ref.get(n)
        if (g is None) != (gr is None):
            res["d" + n] = f"presence mismatch: oracle {gr is not None}, triton {g is not None}"
        elif g is not None:
            res["d" + n] = rel_error(g, gr) if tuple(g.shape) == tuple(gr.shape) else f"shape {tuple(g.shape)}"
    return res


# ----------------------------------------------------------------------------------------------
# the tests


@pytest.fixture(scope="module")
def interpreted_results():
    return run_as_script(__file__, timeout=900)


def _param(case):
    marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if "xfail" in case else []
    return pytest.param(case, id=case["name"], marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_triton_interpreted_matches_naive(interpreted_results, case):
    res = dict(interpreted_results[case["name"]])
    assert "error" not in res, res.get("error")
    meta = res.pop("meta")
    res.pop("seconds", None)
    dtype = case.get("dtype", "float32")
    batch, dim, L, N, G = case["shape"]
    assert meta["out_dtype"] == dtype and meta["du_dtype"] == dtype
    assert meta["out_shape"] == [batch, dim, L]
    assert meta["last_dtype"] == ("float64" if dtype == "float64" else "float32")
    if L > 1 and dim > 1:  # out is token-major when u or z is
        assert meta["out_token_major"] == bool(case.get("token_major") or case.get("z_token_major"))
        if case.get("z", True) and "z" not in case.get("shared", ()):
            assert meta["dz_token_major"] == bool(case.get("token_major") or case.get("z_token_major"))
    if case.get("expect_walk") is not None:  # walked once, on the states the forward kept / not at all
        assert meta["walks"] == ([True] if case["expect_walk"] else []), meta["walks"]
    if case.get("mode", "kernels") != "op":  # the walking forward ran exactly where the case asks for it
        NP = 1 << max(N - 1, 0).bit_length()
        walked = 2 <= NP <= 16 and case.get("tiles", {}).get("fwd_walk", False)
        assert meta["walks"] == (["fwd_walk"] if walked else []), meta["walks"]
        if walked:  # one program walks every direction (MODE 1) where the case lowers the walk's loop threshold
            loop = case.get("orders") is not None and case["tiles"].get("fwd_walk_loop_min_programs") == 1
            # unmasked state loads where N is the padded count, from `fwd_walk_even_min_np` states
            from vssm.kernels.selective_scan.triton_common import Tiles

            even = N == NP >= Tiles(**{**TINY, **case["tiles"]}).fwd_walk_even_min_np
            assert meta["walk_modes"] == [[1 if loop else 0, even]], meta["walk_modes"]
        else:  # the chunk forward's tiles: states in the middle where the case asks for it and the lanes fit
            from vssm.kernels.selective_scan.triton_common import Tiles

            tiles = Tiles(**{**TINY, **case.get("tiles", {})})
            bd = min(tiles.fwd_smid_bd, dim // G & -(dim // G))
            smid = tiles.fwd_smid is True and tiles.fwd_smid_min_np <= NP <= tiles.fwd_smid_max_np and NP * bd >= 32
            loop = case.get("orders") is not None and tiles.fwd_loop_min_programs == 1
            assert [m[0] for m in meta["chunk_modes"]] == [smid], meta["chunk_modes"]
            assert [m[2] for m in meta["chunk_modes"]] == [int(loop)], meta["chunk_modes"]
            if "chunk_T" in case:
                assert meta["chunk_modes"][0][1] == case["chunk_T"], meta["chunk_modes"]
    tol = TOL[dtype]
    bad = {k: v for k, v in res.items() if not (isinstance(v, float) and v <= tol)}
    assert not bad, f"{case['name']}: over {tol:g} (or malformed): {bad}"
    # every gradient of a present input was checked, and no other
    assert sorted(k[1:] for k in res if k.startswith("d")) == sorted(_present(case))


def test_case_names_unique():
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))


def test_triton_backend_on_cpu_without_interpreter_names_the_problem():
    pytest.importorskip("triton")
    import torch

    from vssm.kernels.selective_scan import selective_scan

    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        pytest.skip("the interpreter is on in this process")
    u = torch.randn(1, 2, 5)
    with pytest.raises(ValueError, match="CUDA"):
        selective_scan(u, u, -torch.ones(2, 3), torch.randn(1, 3, 5), torch.randn(1, 3, 5), backend="triton")


_WALK_SWITCH = """
import torch
from vssm.kernels.selective_scan import selective_scan, selective_scan_naive, triton_fwd
from vssm.kernels.selective_scan.cases import make_inputs
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
assert DEFAULT_TILES.fwd_walk
ran, kernel = [], triton_fwd._fwd_walk_kernel
class Spy:
    def __getitem__(self, grid):
        ran.append(grid)
        return kernel[grid]
triton_fwd._fwd_walk_kernel = Spy()
x = make_inputs(2, 8, 11, 4, 1, K=2, shared=("z",), seed=3)
orders = ["natural", "reverse"]
leaves = {n: None if t is None else t.requires_grad_(True) for n, t in x.items()}
out = selective_scan(**leaves, delta_softplus=True, orders=orders, combine="mean", backend="triton")
ref_in = {n: None if t is None else t.detach().double().requires_grad_(True) for n, t in x.items()}
ref = selective_scan_naive(**ref_in, delta_softplus=True, orders=orders, combine="mean")
g = torch.randn_like(ref)
got = torch.autograd.grad(out, [leaves["u"], leaves["A"]], g.float())
want = torch.autograd.grad(ref, [ref_in["u"], ref_in["A"]], g)
assert ran, "the walking forward did not run"
assert (out.double() - ref).abs().max() <= 1e-5 * ref.abs().max()
for a, b in zip(got, want):
    assert (a.double() - b).abs().max() <= 1e-5 * b.abs().max()
print("ok")
"""


def test_walk_switch_through_the_op():
    """VSSM_SCAN_FWD=walk makes the op's forward the walking kernel (autograd and the chunk backward on top)."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", VSSM_SCAN_FWD="walk")
    proc = subprocess.run([sys.executable, "-c", _WALK_SWITCH], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]

_DISPATCHER_BWD = """
import torch
from vssm.kernels.selective_scan import op, selective_scan_naive
g = torch.Generator().manual_seed(0)
b, d, L, n = 2, 4, 9, 3
names = ("u", "delta", "A", "B", "C", "D", "delta_bias")
x = dict(u=torch.randn(b, d, L, generator=g), delta=torch.randn(b, d, L, generator=g),
         A=-torch.rand(d, n, generator=g) - 0.5, B=torch.randn(b, n, L, generator=g),
         C=torch.randn(b, n, L, generator=g), D=torch.randn(d, generator=g), delta_bias=torch.randn(d, generator=g))
leaves = {k: v.clone().requires_grad_(True) for k, v in x.items()}
args = op.prepare(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], leaves["D"], None,
                  leaves["delta_bias"], True, None, None, "sum", "triton")
out, last, _ = torch.ops.vssm.selective_scan_fwd(*args)
got = torch.autograd.grad(out, [leaves[k] for k in names], torch.ones_like(out))
ref_in = {k: v.double().requires_grad_(True) for k, v in x.items()}
ref = selective_scan_naive(ref_in["u"], ref_in["delta"], ref_in["A"], ref_in["B"], ref_in["C"], ref_in["D"], None,
                           ref_in["delta_bias"], delta_softplus=True)
want = torch.autograd.grad(ref, [ref_in[k] for k in names], torch.ones_like(ref))
for k, a, w in zip(names, got, want):
    assert (a.double() - w).abs().max() <= 1e-5 * w.abs().max(), k
print("ok")
"""


def test_dispatcher_backward_with_D_and_delta_bias():
    """Through the torch.library ops (as under torch.compile), a backward with both D and delta_bias in
    float32: the op's outputs may not share storage (the kernels' dD and d(delta_bias) come from one sum),
    and the gradients match the step loop."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", _DISPATCHER_BWD], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_grads_store_dB_dC_in_the_input_dtype_with_one_slice():
    """With one channel slice the backward writes dB / dC once per element, in B's / C's dtype; with more
    slices they are float32 partials summed afterwards."""
    pytest.importorskip("triton")
    import torch

    from vssm.kernels.selective_scan.triton_common import Grads, Prep

    u = torch.zeros(2, 1, 8, 5, dtype=torch.bfloat16)
    A = torch.zeros(1, 8, 3)
    B = torch.zeros(2, 1, 1, 3, 5, dtype=torch.bfloat16)
    C = torch.zeros(2, 1, 1, 3, 5, dtype=torch.float16)
    Dv = torch.zeros(1, 8)
    p = Prep(u, u, A, B, C, Dv, None, Dv, None)
    one, two = Grads(p, u, u, None, 2, 1), Grads(p, u, u, None, 2, 2)
    assert (one.dB.dtype, one.dC.dtype) == (torch.bfloat16, torch.float16)
    assert (two.dB.dtype, two.dC.dtype) == (torch.float32, torch.float32)
    assert one.finish(Dv, Dv)[3].dtype == torch.bfloat16


def test_direction_sum_matches_torch_sum():
    """The forward's per-direction outputs are summed with elementwise adds for two directions: bit for bit
    torch.sum's result (one float32 sum, rounded once), in both layouts and dtypes, three directions too."""
    pytest.importorskip("triton")
    import torch

    from vssm.kernels.selective_scan.op import sum_directions

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for K in (2, 3):
            for token_major in (False, True):
                raw = torch.randn(3, K, 7, 5, generator=g) * torch.logspace(-4, 4, 5)
                if token_major:  # (batch, K, D, L) stored (batch, K, L, D)
                    dest = raw.to(dtype).transpose(2, 3).contiguous().transpose(2, 3)
                    out = torch.empty(3, 5, 7, dtype=dtype).transpose(1, 2)
                else:
                    dest, out = raw.to(dtype), torch.empty(3, 7, 5, dtype=dtype)
                sum_directions(dest, out)
                assert torch.equal(out, dest.sum(dim=1)), (dtype, K, token_major)



def test_host_int_helpers_match_triton():
    """The host code's cdiv / next_pow2 (plain ints, no constexpr unwrapping) give triton's values."""
    triton = pytest.importorskip("triton")
    from vssm.kernels.intmath import cdiv, next_pow2

    for n in range(1, 4100):
        assert next_pow2(n) == triton.next_power_of_2(n), n
    for a in range(0, 300):
        for b in range(1, 40):
            assert cdiv(a, b) == triton.cdiv(a, b), (a, b)


def test_needs_idx64_storage_shortcut_is_exact():
    """Tensors on storages under 2**31 elements are answered from the storage size; larger ones (meta
    tensors: no memory) by their strides, as before the shortcut."""
    pytest.importorskip("triton")
    import torch

    from vssm.kernels.selective_scan.triton_common import _needs_idx64

    def by_strides(t):  # offsets inside one batch row, over its directions
        return sum((s - 1) * st for s, st in zip(t.shape[1:], t.stride()[1:])) >= 2**31 - 1

    big = torch.empty(2**31 + 64, device="meta", dtype=torch.bfloat16)
    cases = [
        torch.empty(2, 3, 5, 7),
        torch.empty(2, 3, 7, 5).transpose(2, 3),
        big.as_strided((1, 1, 2**31 - 1), (0, 0, 1)),  # span 2**31 - 2: int32 offsets suffice
        big.as_strided((1, 1, 2**31), (0, 0, 1)),  # span 2**31 - 1: needs int64
        big.as_strided((1, 1, 3, 2), (0, 0, 2**30, 1)),  # span 2**31 + 1 through a stride
        big.as_strided((2, 1, 4, 8), (2**30, 0, 8, 1)),  # large batch stride only: int32 inside a row
        big.as_strided((1, 2, 4, 8), (0, 2**30, 8, 1)),  # two directions stored outside the batch: int32 suffices
        big.as_strided((1, 3, 4, 8), (0, 2**30, 8, 1)),  # three: the last direction starts at 2**31
    ]
    for t in cases:
        assert _needs_idx64(t) == by_strides(t), (t.shape, t.stride())
    assert _needs_idx64(None, cases[0], cases[3]) and not _needs_idx64(None, cases[0], cases[5])
    assert not _needs_idx64(cases[6]) and _needs_idx64(cases[7])

def test_fast_launch_key_and_switch(monkeypatch):
    """The fast launch's key separates what Triton specializes on; under the interpreter it is Triton's own
    launch; a bad VSSM_FAST_LAUNCH is refused naming it (the launches themselves: tests/gpu)."""
    pytest.importorskip("triton")
    import torch

    from vssm.kernels.launch import _enabled, arg_key

    t = torch.zeros(64)
    assert arg_key((t,)) != arg_key((t[1:],))  # 16-byte aligned vs not
    assert arg_key((t,)) != arg_key((t.double(),))
    keys = {arg_key((v,)) for v in (1, 16, 17, 2**31, -(2**31) - 1, 2**63)}
    assert len(keys) == 6
    assert arg_key((17,)) != arg_key((19,)) and arg_key((17,)) == arg_key((17,))  # ints by value
    assert arg_key((None, True, 0.5)) != arg_key((None, False, 0.5))
    assert arg_key((True,)) != arg_key((1,))  # equal as Python values, not as Triton arguments
    monkeypatch.setenv("VSSM_FAST_LAUNCH", "yes")
    with pytest.raises(ValueError, match="VSSM_FAST_LAUNCH"):
        _enabled()
    monkeypatch.setenv("VSSM_FAST_LAUNCH", "0")
    assert not _enabled()
    class Marked(torch.Tensor):  # a __torch_function__ subclass reaches the kernels as it is
        pass

    m32, m16 = t.as_subclass(Marked), torch.zeros(64, dtype=torch.float16).as_subclass(Marked)
    assert arg_key((m32,)) != arg_key((m16[1:],)) and arg_key((m32,)) != arg_key((m32[1:],))


def _toy(x_ptr, n, BLOCK: tl.constexpr, FLAG: tl.constexpr = 3):  # noqa: F821 (annotations stay strings)
    pass


def test_fast_launch_caches_by_key_and_keeps_tritons_path_where_it_must(monkeypatch):
    """The launch logic on the CPU (a stand-in for the compiled kernel): the first launch of a key takes
    Triton's path, the next ones the compiled kernel with every parameter in order (constexpr defaults
    filled in); a new alignment is a new key; constexprs by position, launch hooks and VSSM_FAST_LAUNCH=0
    keep Triton's path."""
    pytest.importorskip("triton")
    import torch
    from triton import knobs
    from triton.runtime.jit import JITFunction

    from vssm.kernels.launch import FastLaunch

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    slow, fast = [], []

    class Compiled:
        def __getitem__(self, grid):
            return lambda *a: fast.append((grid, a))

    class Jit:
        def __getitem__(self, grid):
            return lambda *a, **k: (slow.append((grid, a, k)), Compiled())[1]

    launcher = FastLaunch(JITFunction(_toy))
    assert launcher._jit and launcher._positional == 2
    launcher.kernel = Jit()  # after the wrapper has read the real kernel's parameters
    x = torch.zeros(64)
    launcher[(4,)](x, 9, BLOCK=32)
    launcher[(4,)](x, 9, BLOCK=32)
    # a CPU tensor reaches the launcher as the tensor (its check and error are the launcher's); the default
    # of the constexpr FLAG is filled in
    assert len(slow) == 1 and fast == [((4, 1, 1), (x, 9, 32, 3))]
    launcher[(4,)](x[1:], 9, BLOCK=32)  # misaligned: a new key
    launcher[(4,)](x, 16, BLOCK=32)  # another int: a new key
    launcher[(4,)](x, 9, BLOCK=64)  # another constexpr value: a new key
    assert len(slow) == 4 and len(fast) == 1
    launcher[(2, 3)](x, 7, 32)  # BLOCK by position: Triton's path every time
    launcher[(2, 3)](x, 7, 32)
    assert len(slow) == 6
    chain = knobs.runtime.launch_enter_hook  # a HookChain from Triton 3.5 on, else None
    if chain is None:
        monkeypatch.setattr(knobs.runtime, "launch_enter_hook", lambda *a: None)
        launcher[(4,)](x, 9, BLOCK=32)
        monkeypatch.setattr(knobs.runtime, "launch_enter_hook", None)
    else:
        hook = lambda *a: None  # noqa: E731
        chain.add(hook)
        try:
            launcher[(4,)](x, 9, BLOCK=32)
        finally:
            chain.remove(hook)
    assert len(slow) == 7
    monkeypatch.setenv("VSSM_FAST_LAUNCH", "0")
    n = len(slow)
    launcher[(4,)](x, 9, BLOCK=32)
    assert len(slow) == n + 1
    monkeypatch.setenv("VSSM_FAST_LAUNCH", "1")
    launcher[(4,)](x, 9, BLOCK=32)
    assert len(slow) == n + 1 and len(fast) == 2
    # Triton's path every time: a tuple argument (Triton specializes its contents), a callable grid, a
    # tensor by keyword; equal keyword values of other types (True / 1) are separate entries
    n = len(slow)
    for _ in range(2):
        launcher[(4,)]((x, 16), 9, BLOCK=32)
        launcher[lambda meta: (4,)](x, 9, BLOCK=32)
        launcher[(4,)](x, 9, BLOCK=32, FLAG=x)
    assert len(slow) == n + 6 and len(fast) == 2
    launcher[(4,)](x, 9, BLOCK=32, FLAG=True)
    launcher[(4,)](x, 9, BLOCK=32, FLAG=1)
    assert len(slow) == n + 8


def test_fast_launch_calls_the_launcher_directly_where_its_signature_is_known(monkeypatch):
    """A compiled kernel whose launcher takes the runner's call (Triton 3.7+'s nine named leading parameters,
    or 3.5-3.6's five and *args) is launched through it directly (grid, the current stream, function, packed
    metadata, no launch metadata or hooks, then every argument); one with another signature keeps the
    compiled kernel's runner."""
    pytest.importorskip("triton")
    import torch
    from triton.runtime.jit import JITFunction

    from vssm.kernels import launch
    from vssm.kernels.launch import FastLaunch

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(launch, "_current_stream", lambda device: 77)
    direct, runner = [], []

    class Launcher:
        def __call__(self, gx, gy, gz, stream, function, packed, meta, enter, exit_, *args):
            direct.append((gx, gy, gz, stream, function, packed, meta, enter, exit_, args))

    class Launcher36:  # Triton 3.5-3.6's CudaLauncher: five named, the metadata and hooks in *args
        def __call__(self, gx, gy, gz, stream, function, *args):
            direct.append((gx, gy, gz, stream, function, *args[:4], args[4:]))

    class OtherLauncher:  # a signature the wrapper does not know
        def __call__(self, grid, stream, *args):
            raise AssertionError("must not be called")

    def compiled(run):
        return type("Compiled", (), {"run": run, "function": "fn", "packed_metadata": "pm",
                                     "__getitem__": lambda self, g: lambda *a: runner.append((g, a))})()

    x = torch.zeros(64)
    for run, expect_direct in ((Launcher(), True), (Launcher36(), True), (OtherLauncher(), False)):
        direct.clear()
        launcher = FastLaunch(JITFunction(_toy))
        made = compiled(run)
        launcher.kernel = type("Jit", (), {"__getitem__": lambda self, g, made=made: lambda *a, **k: made})()
        launcher[(4, 2)](x, 9, BLOCK=32)  # Triton's path: fills the cache
        launcher[(4, 2)](x, 9, BLOCK=32)
        if expect_direct:
            assert direct == [(4, 2, 1, 77, "fn", "pm", None, None, None, (x, 9, 32, 3))] and not runner
        else:
            assert runner == [((4, 2, 1), (x, 9, 32, 3))]


if __name__ == "__main__":
    # child process: TRITON_INTERPRET=1 is already in the environment
    import traceback

    only = set(sys.argv[1:])  # names of cases to run (all when none): for timing and debugging
    results, start, cpu = {}, time.perf_counter(), time.process_time()
    for c in CASES:
        if only and c["name"] not in only:
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            results[c["name"]] = _run_case(c)
        except Exception:  # report per case; the parent turns it into that case's failure
            results[c["name"]] = {"error": traceback.format_exc()[-3000:]}
        results[c["name"]]["seconds"] = round(time.perf_counter() - t0, 2)
        print(f"{c['name']}: {results[c['name']]['seconds']} s ({time.process_time() - c0:.2f} s CPU)", file=sys.stderr)
    print(f"total {time.perf_counter() - start:.1f} s ({time.process_time() - cpu:.1f} s CPU)", file=sys.stderr)
    print(json.dumps(results))



_CARRY_PATHS = """
import dataclasses, json, torch
from vssm.kernels.selective_scan.op import prepare
from vssm.kernels.selective_scan.triton_carry import run_carry
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES, Prep
from vssm.kernels.intmath import cdiv
g = torch.Generator().manual_seed(5)
res = []
# (batch, dim, L, N, G, orders, T, store_every): groups, N = 1, a gather order table, a partial last chunk
for batch, dim, L, N, G, orders, T, every in [(2, 8, 45, 3, 1, ["perm", "reverse"], 4, 3), (1, 8, 37, 1, 2, None, 4, 2),
                                              (1, 4, 29, 2, 1, None, 4, 1),
                                              (2, 4, 16, 2, 1, None, 4, 4)]:  # the last: one slot, no local pass
    K = len(orders) if orders else 1
    shp = (batch, K, dim, L) if orders else (batch, dim, L)
    u, delta = torch.randn(shp, generator=g), torch.randn(shp, generator=g) * 0.5
    bshape = (batch, K, G, N, L) if orders else (batch, G, N, L)
    B, C = torch.randn(bshape, generator=g), torch.randn(bshape, generator=g)
    A = -torch.rand((K, dim, N) if orders else (dim, N), generator=g) - 0.2
    Dv = torch.randn(A.shape[:-1], generator=g); bias = torch.randn(A.shape[:-1], generator=g) * 0.1
    ords = [torch.randperm(L, generator=g) if o == "perm" else o for o in orders] if orders else None
    args = prepare(u, delta, A, B, C, Dv, None, bias, True, ords, None, "sum" if orders else None, "triton",
                   grad=False)
    nu, nd, nA, nB, nC, nD, nz, nb, idx = args[:9]
    p = Prep(nu, nd, nA, nB, nC, nD, nz, nb, idx)
    n_chunks = cdiv(L, T)
    tiles = dataclasses.replace(DEFAULT_TILES, carry_dn=16)
    serial = run_carry(p, nu, nd, n_chunks, T, every, True, dataclasses.replace(tiles, carry_two_pass_min_chunks=1 << 30))
    for target in (1, 4, 1 << 20):  # one local segment per slot, a few, one chunk each
        two = run_carry(p, nu, nd, n_chunks, T, every, True,
                        dataclasses.replace(tiles, carry_two_pass_min_chunks=1, carry_min_programs=target))
        res.append(dict(case=[batch, dim, L, N, G, K, every, target], shape=list(two.shape),
                        zeros=bool((two[:, :, 0] == 0).all()), err=float((two - serial).abs().max()),
                        scale=float(serial.abs().max())))
print(json.dumps(res))
"""


def test_carry_two_passes_equal_the_serial_walk():
    """The forward's carry (interpreter): the two passes give the states of the serial walk at every slot, for
    one, a few and single-chunk local segments, with groups, N = 1, a gather order and a partial last chunk."""
    rows = run_code(_CARRY_PATHS, 600)
    assert len(rows) == 12
    for r in rows:
        assert r["zeros"], r
        assert r["err"] <= 1e-5 * max(1.0, r["scale"]), r
        assert r["shape"][2] == 1 or r["scale"] > 0.1, r  # states that are not all zero where there are several slots


_SMID_STATES = """
import dataclasses, json, sys, torch
sys.path.insert(0, sys.argv[1])
from launch_spy import LaunchSpy
from vssm.kernels.selective_scan import selective_scan
from vssm.kernels.selective_scan import triton_fwd
from vssm.kernels.selective_scan.op import prepare
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
g = torch.Generator().manual_seed(7)
res = []
spy = triton_fwd._fwd_kernel = LaunchSpy(triton_fwd._fwd_kernel)
# (batch, dim, L, N, orders): 16 states, 8 states (chunks of 32), padded 12 with a gather order, a partial last chunk
for batch, dim, L, N, orders in [(2, 8, 45, 16, None), (1, 16, 70, 8, None), (1, 8, 33, 12, ["perm", "reverse"])]:
    K = len(orders) if orders else 1
    shp = (batch, K, dim, L) if orders else (batch, dim, L)
    u, delta = torch.randn(shp, generator=g), torch.randn(shp, generator=g) * 0.5
    bshape = (batch, K, 1, N, L) if orders else (batch, 1, N, L)
    B, C = torch.randn(bshape, generator=g), torch.randn(bshape, generator=g)
    A = -torch.rand((K, dim, N) if orders else (dim, N), generator=g) - 0.2
    Dv, bias = torch.randn(A.shape[:-1], generator=g), torch.randn(A.shape[:-1], generator=g) * 0.1
    z = torch.randn(batch, dim, L, generator=g)
    ords = [torch.randperm(L, generator=g) if o == "perm" else o for o in orders] if orders else None
    args = prepare(u, delta, A, B, C, Dv, z, bias, True, ords, None, "sum" if orders else None, "triton", grad=False)
    got = {}
    for smid in (True, False):
        tiles = dataclasses.replace(DEFAULT_TILES, fwd_smid=smid, fwd_T=8, fwd_dn=64)
        got[smid] = triton_fwd.triton_forward(*args[:11], states_T=32, tiles=tiles)
    row = dict(case=[batch, dim, L, N, K], slots=got[True][2].shape[2])
    row["err"] = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got[True], got[False]))
    if orders is None:  # the state before token 32 j is the last state of a scan over the tokens before it
        st = got[True][2].view(batch, dim, -1, N)
        errs = []
        for j in range(1, st.shape[2]):
            _, last = selective_scan(u[..., :32 * j].double(), delta[..., :32 * j].double(), A.double(),
                                     B[..., :32 * j].double(), C[..., :32 * j].double(), Dv.double(), None,
                                     bias.double(), True, return_last_state=True, backend="reference")
            errs.append(float((st[:, :, j] - last).abs().max() / last.abs().max()))
        row["oracle"] = max(errs)
        row["first_zero"] = bool((st[:, :, 0] == 0).all())
    res.append(row)
launched = [(k["SMID"], k["STORE"], k["T"]) for _, _, k in spy.launches]
print(json.dumps(dict(rows=res, launched=launched)))
"""


def test_states_middle_forward_keeps_chunk_start_states():
    """The chunk forward with states-middle tiles storing every 32nd token's state (interpreter; the op keeps
    states for N = 1 only, where these tiles do not run, so direct callers): equal to the states-last kernel's
    out, last and kept states, and the kept states equal to the oracle's last state of each prefix."""
    pytest.importorskip("triton")
    import json
    import os

    env = dict(os.environ, TRITON_INTERPRET="1")
    spy_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu")  # launch_spy.LaunchSpy
    proc = subprocess.run([sys.executable, "-c", _SMID_STATES, spy_dir], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [tuple(x) for x in out["launched"]] == [(True, True, 16), (False, True, 8), (True, True, 32),
                                                   (False, True, 8), (True, True, 16), (False, True, 8)]
    for r in out["rows"]:
        assert r["slots"] == -(-r["case"][2] // 32), r
        assert r["err"] <= 1e-5, r
        if "oracle" in r:
            assert r["oracle"] <= 1e-5 and r["first_zero"], r
