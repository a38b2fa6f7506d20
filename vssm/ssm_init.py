"""Pieces shared by the SSM mixers (`Mamba`, `SS2D`): argument checks and the official SSM init."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from vssm.timm_glue import mark_no_weight_decay

__all__ = ["positive_int", "scan_param", "init_ssm_"]


def positive_int(owner: str, name: str, value) -> int:
    """`value` if it is a positive int, else a ValueError naming `owner`'s argument `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be a positive int, got {value!r}")
    return value


def scan_param(t: torch.Tensor) -> torch.Tensor:
    """SSM parameters enter the scan in float32 (as officially), or float64 for float64 modules."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


@torch.no_grad()
def init_ssm_(
    dt_weight: torch.Tensor,
    dt_bias: torch.Tensor,
    A_log: torch.Tensor,
    D: torch.Tensor,
    *,
    dt_rank: int,
    dt_min: float,
    dt_max: float,
    dt_init_floor: float,
    dt_scale: float = 1.0,
) -> None:
    """The Mamba-1 SSM init, in place: dt weight ~ U(+-dt_scale * dt_rank^-0.5), softplus(dt bias) ~
    logU[dt_min, dt_max] clamped at dt_init_floor, A_log = log(1..N) (S4D-real) along the last dim,
    D = 1. Marks A_log and D for no weight decay and the dt bias to survive later re-inits."""
    std = dt_scale * dt_rank**-0.5
    nn.init.uniform_(dt_weight, -std, std)
    lo, hi = math.log(dt_min), math.log(dt_max)
    dt = torch.exp(torch.rand_like(dt_bias, dtype=torch.float32) * (hi - lo) + lo).clamp(min=dt_init_floor)
    dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
    dt_bias._no_reinit = True
    N = A_log.shape[-1]
    A_log.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32, device=A_log.device)).expand_as(A_log))
    D.fill_(1.0)
    mark_no_weight_decay(A_log, D)
