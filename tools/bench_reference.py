"""CPU benchmark of the chunked PyTorch reference scan against the per-step loop.

    python tools/bench_reference.py [--threads 2] [--repeats 5]

Prints, per shape: the per-step loop's time, the chunked reference's forward time and forward +
backward time (medians), the speed-up, and the relative error of the reference against the loop
evaluated in float64.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vssm.kernels.selective_scan import selective_scan_naive, selective_scan_reference
from vssm.kernels.selective_scan.op import selective_scan

# (batch, D, L, N, G): the two shapes (Vim-S-like N=16, VMamba-like N=1 with 4 groups).
SHAPES = [(2, 384, 197, 16, 1), (2, 384, 3136, 1, 4)]


def model_like_inputs(batch: int, dim: int, L: int, N: int, G: int, seed: int = 0) -> dict:
    """Inputs with the scale the models feed the scan (dt ~ 1e-3..1e-1 after softplus, A = -(1..N))."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.exp(torch.rand(dim, generator=g) * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3))) + torch.log(torch.tensor(1e-3)))
    return dict(
        u=torch.randn(batch, dim, L, generator=g),
        delta=torch.randn(batch, dim, L, generator=g) * 0.5,
        A=-torch.arange(1, N + 1, dtype=torch.float32).repeat(dim, 1),
        B=torch.randn(batch, G, N, L, generator=g),
        C=torch.randn(batch, G, N, L, generator=g),
        D=torch.ones(dim),
        z=torch.randn(batch, dim, L, generator=g),
        delta_bias=dt + torch.log(-torch.expm1(-dt)),  # inverse softplus
    )


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}")
    header = f"{'shape (b, D, L, N, G)':<26}{'loop fwd ms':>12}{'ref fwd ms':>12}{'speed-up':>10}{'ref fwd+bwd ms':>16}{'rel err':>10}"
    print(header)
    for shape in SHAPES:
        inp = model_like_inputs(*shape)
        with torch.no_grad():
            t_loop = _median_time(lambda inp=inp: selective_scan_naive(**inp, delta_softplus=True), max(1, args.repeats // 2))
            t_ref = _median_time(lambda inp=inp: selective_scan_reference(**inp, delta_softplus=True), args.repeats)
            exact = selective_scan_naive(**{k: v.double() for k, v in inp.items()}, delta_softplus=True)
            ours = selective_scan_reference(**inp, delta_softplus=True)
        err = float((ours.double() - exact).norm() / exact.norm())
        leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}

        def fwd_bwd(leaves=leaves):
            selective_scan(**leaves, delta_softplus=True, backend="reference").sum().backward()

        t_fb = _median_time(fwd_bwd, args.repeats)
        row = dict(shape=shape, loop_ms=t_loop * 1e3, ref_ms=t_ref * 1e3, speedup=t_loop / t_ref, fwd_bwd_ms=t_fb * 1e3, rel_err=err)
        rows.append(row)
        print(f"{str(shape):<26}{row['loop_ms']:>12.1f}{row['ref_ms']:>12.1f}{row['speedup']:>9.1f}x{row['fwd_bwd_ms']:>16.1f}{err:>10.1e}")
    return rows


if __name__ == "__main__":
    main()
