"""`selective_scan.direction_sum.add_direction_sum` (dest += src summed over the directions, SS2D's tokens' gradient):
the torch path and the Triton kernel under TRITON_INTERPRET=1 (in a child process, as in test_scan_gate.py) against
the float64 sum, over layouts (token-major as SS2D's du and dtok, channel-major, slices), K 1-4, odd sizes, L = 1,
float32 / bf16 / fp16; dest written in place, rounded once; a NaN in one sample stays there; bad shapes refused."""

from __future__ import annotations

import json

import pytest
import torch
from interpreted import run_as_script

from vssm.kernels.selective_scan.direction_sum import add_direction_sum

# name, batch, K, D, L, dtype, layout
CASES = [
    ("tm_K4_f32", 2, 4, 70, 67, "float32", "token_major"),  # SS2D: du (batch, K, L, D), dtok (batch, L, D)
    ("tm_K4_bf16", 3, 4, 65, 129, "bfloat16", "token_major"),
    ("cm_K2_f32", 2, 2, 9, 5, "float32", "channel_major"),
    ("L1_K3", 4, 3, 17, 1, "float32", "token_major"),
    ("D1_K4_f16", 2, 4, 1, 33, "float16", "channel_major"),
    ("K1", 2, 1, 33, 40, "float32", "token_major"),
    ("slices_wide", 2, 4, 300, 70, "float32", "slices"),  # strided views, several channel and token tiles
]
# one rounding of a float32 sum, relative to the largest value: an ulp of bf16 (the interpreter's conversion may
# truncate), half an ulp of fp16 and float32
TOL = {"float32": 1e-6, "bfloat16": 8e-3, "float16": 5e-4}


def _inputs(batch, K, D, L, dtype, layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    dt = getattr(torch, dtype)
    if layout == "token_major":
        src = torch.randn(batch, K, L, D, generator=g).to(dt).transpose(2, 3)
        dest = torch.randn(batch, L, D, generator=g).to(dt).transpose(1, 2)
    elif layout == "channel_major":
        src = torch.randn(batch, K, D, L, generator=g).to(dt)
        dest = torch.randn(batch, D, L, generator=g).to(dt)
    else:  # every other channel of a wider tensor, the directions outside the batch
        src = torch.randn(K, batch, 2 * D, L, generator=g).to(dt)[:, :, ::2].transpose(0, 1)
        dest = torch.randn(batch, L, 3 * D, generator=g).to(dt)[:, :, D:2 * D].transpose(1, 2)
    return dest, src


def _errors(case, use_triton: bool) -> dict:
    _, batch, K, D, L, dtype, layout = case
    dest, src = _inputs(batch, K, D, L, dtype, layout)
    ref = dest.double() + src.double().sum(1)
    ptr, strides = dest.data_ptr(), dest.stride()
    out = add_direction_sum(dest, src, use_triton)
    return {"err": float((out.double() - ref).abs().max() / ref.abs().max()),
            "in_place": out is dest and dest.data_ptr() == ptr and dest.stride() == strides,
            "dtype": str(out.dtype).removeprefix("torch.") == dtype}


def _poison(use_triton: bool) -> bool:
    dest, src = _inputs(3, 4, 40, 37, "float32", "token_major")
    clean = add_direction_sum(dest.clone(), src, use_triton)
    src = src.clone()
    src[1, 2, 5, 7] = float("nan")
    dirty = add_direction_sum(dest.clone(), src, use_triton)
    return (torch.equal(clean[0], dirty[0]) and torch.equal(clean[2], dirty[2]) and bool(dirty[1, 5, 7].isnan())
            and int(dirty[1].isnan().sum()) == 1)


if __name__ == "__main__":  # the child: TRITON_INTERPRET=1 (run_as_script)
    res = {c[0]: _errors(c, True) for c in CASES}
    res["poison"] = _poison(True)
    print(json.dumps(res))


@pytest.fixture(scope="module")
def interpreted():
    return run_as_script(__file__, timeout=600)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_triton_interpreter(interpreted, case):
    res = interpreted[case[0]]
    assert res["in_place"] and res["dtype"] and res["err"] <= TOL[case[5]], res


@pytest.mark.parametrize("case", CASES + [("f64", 2, 4, 5, 7, "float64", "token_major")], ids=lambda c: c[0])
def test_torch_path(case):
    res = _errors(case, False)
    assert res["in_place"] and res["dtype"] and res["err"] <= TOL.get(case[5], 1e-15), res


def test_poisoned_sample_stays(interpreted):
    assert interpreted["poison"] and _poison(False)


def test_bad_shapes():
    dest = torch.zeros(2, 5, 7)
    with pytest.raises(ValueError, match="`src` .* must be \\(batch, K, D, L\\)"):
        add_direction_sum(dest, torch.zeros(2, 4, 5, 6), False)
    with pytest.raises(ValueError, match="`src`"):
        add_direction_sum(dest, torch.zeros(2, 5, 7), False)
