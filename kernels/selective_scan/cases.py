"""Inputs like a Vim / VMamba layer's, and the error measure, for the scan's tests and benchmarks.

One builder for the CPU tests, the interpreter tests, the GPU tests and `tools/bench_scan.py`, so they
all draw the same kind of data: delta around softplus^-1 of 1e-3..1e-1 steps, A = -(1..N) like the
S4D-real init, unit-scale u / B / C / z.
"""

from __future__ import annotations

import math

import torch

__all__ = ["make_inputs", "rel_error", "NAMES"]

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(
    batch: int,
    dim: int,
    L: int,
    N: int,
    G: int = 1,
    *,
    K: int | None = None,
    shared: tuple[str, ...] = (),
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    z: bool = True,
    D: bool = True,
    delta_bias: bool = True,
    token_major: bool = False,
    seed: int = 0,
) -> dict:
    """Keyword arguments of `selective_scan` (u, delta, A, B, C, D, z, delta_bias).

    K=None: the single-direction shapes. K given: per-direction tensors with K after the batch axis
    (first for A, D, delta_bias), except the names in `shared` (single-direction shapes). token_major: u, delta and z are views of (..., L, D) tensors, as a Linear writes them.
    Float tensors of per-token data are in `dtype`; A, D and delta_bias are float32.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g) * scale + shift).to(device)

    def per_dir(name, shape, lead):
        if K is None or name in shared:
            return shape
        return shape[:lead] + (K,) + shape[lead:]

    def tokens(name, scale=1.0, shift=0.0):
        shape = per_dir(name, (batch, dim, L), 1)
        if token_major:
            t = rnd(*shape[:-2], L, dim, scale=scale, shift=shift).to(dtype)
            return t.transpose(-1, -2)
        return rnd(*shape, scale=scale, shift=shift).to(dtype)

    # softplus(delta + bias) spans ~1e-3 .. 1e-1 like the official dt init
    bias_val = math.log(math.expm1(0.01))
    out = {
        "u": tokens("u"),
        "delta": tokens("delta", scale=0.5),
        "A": -torch.arange(1, N + 1, dtype=torch.float32).repeat(*per_dir("A", (dim,), 0), 1).to(device)
        * (1 + 0.1 * rnd(*per_dir("A", (dim, N), 0)).abs()),
        "B": rnd(*per_dir("B", (batch, G, N, L), 1)).to(dtype),
        "C": rnd(*per_dir("C", (batch, G, N, L), 1)).to(dtype),
        "D": rnd(*per_dir("D", (dim,), 0)) if D else None,
        "z": tokens("z") if z else None,
        "delta_bias": rnd(*per_dir("delta_bias", (dim,), 0), scale=0.5, shift=bias_val) if delta_bias else None,
    }
    return out


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64, with a floor so that exactly-zero references (dA at L = 1) do not
    divide rounding by zero. NaN anywhere gives NaN (which fails every `<` check)."""
    a, b = a.detach().double(), b.detach().double()
    floor = 1e-6 * math.sqrt(max(1, b.numel()))
    return float((a - b).norm() / max(float(b.norm()), floor))
