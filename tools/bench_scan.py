"""Benchmark the Triton selective scan against the CUDA kernel's published H100 times.

Prints, per shape and dtype: forward and backward milliseconds (`triton.testing.do_bench` medians),
the GB/s the fewest bytes imply, that as a percentage of a device-to-device copy measured in the
same run, and the ratio to the CUDA kernel (mamba_ssm, fp32, z + D + delta_bias + softplus).

    python tools/bench_scan.py                       # the four shapes, fp32 and bf16
    python tools/bench_scan.py --variants sweep      # also try the tile sizes in VARIANTS
    python tools/bench_scan.py --check               # compare with the float64 reference first
"""

from __future__ import annotations

import argparse
import json
import math

import torch

# (batch, D, L, N, G): CUDA fwd ms, bwd ms on one H100 (shared/REFERENCE.md)
SHAPES = {
    "vim_s_224": ((128, 768, 197, 16, 1), 0.761, 2.395),
    "vim_ti_1248": ((8, 384, 6085, 16, 1), 0.754, 2.367),
    "vmamba_t_s1": ((128, 768, 3136, 1, 4), 3.184, 9.008),
    "n16_g4": ((64, 384, 3136, 16, 4), 3.793, 10.81),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Tile-size overrides tried with --variants sweep: keys of triton_scan.TILES, or with a "tl." prefix
# keys of triton_scan_timelanes.TILES (the N = 1 backward).
VARIANTS = {
    "default": {},
    "fwd_t16": {"fwd_T": 16},
    "fwd_dn256_w8": {"fwd_dn": 256, "fwd_warps": 8},
    "fwd_no_prefetch": {"fwd_prefetch": False},
    "bwd_dn64_w2": {"bwd_dn": 64, "bwd_warps": 2},
    "bwd_grouped_dn128_w4": {"bwd_dn_grouped": 128, "bwd_warps_grouped": 4},
    "bwd_t8": {"bwd_T": 8},
    "bwd_no_prefetch": {"bwd_prefetch": False},
    "carry_no_pair": {"carry_pair": False},
    "carry_no_prefetch": {"carry_prefetch": False},
    "segments": {"fwd_target_programs": 1056},
    "n1_time_major_bwd": {"n1_timelanes": False},
    "n1_chunk_parallel": {"tl.walk": False},
    "n1_walk512": {"tl.walk_tile": 512},
    "n1_walk256": {"tl.walk_tile": 256},
    "n1_v2carry": {"tl.v2_carry": True},
    "n1_v2carry_nopf": {"tl.v2_carry": True, "carry_prefetch": False},
}


class _tiles:
    """Apply VARIANTS-style overrides to the kernels' TILES dicts for the duration of a with block."""

    def __init__(self, overrides):
        from vssm.kernels.selective_scan import triton_scan, triton_scan_timelanes

        self.mods = {"": triton_scan.TILES, "tl.": triton_scan_timelanes.TILES}
        self.overrides = overrides or {}

    def __enter__(self):
        self.saved = {k: dict(v) for k, v in self.mods.items()}
        for key, value in self.overrides.items():
            prefix = "tl." if key.startswith("tl.") else ""
            name = key[len(prefix):]
            if name not in self.mods[prefix]:
                raise KeyError(f"unknown tile key {key!r}")
            self.mods[prefix][name] = value

    def __exit__(self, *exc):
        for prefix, tiles in self.mods.items():
            tiles.clear()
            tiles.update(self.saved[prefix])


def make_inputs(shape, dtype, device="cuda", seed=0):
    """Inputs distributed like a Vim/VMamba layer: A = -(1..N), dt ~ softplus(delta + bias) in [1e-3, 0.1]."""
    batch, dim, L, N, G = shape
    g = torch.Generator(device=device).manual_seed(seed)
    r = lambda *s: torch.randn(*s, device=device, generator=g)
    u = r(batch, dim, L).to(dtype)
    delta = (0.5 * r(batch, dim, L)).to(dtype)
    z = r(batch, dim, L).to(dtype)
    B = r(batch, G, N, L).to(dtype)
    C = r(batch, G, N, L).to(dtype)
    A = -torch.arange(1, N + 1, device=device, dtype=torch.float32).repeat(dim, 1)
    D = torch.ones(dim, device=device)
    dt0 = torch.exp(torch.rand(dim, device=device, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    delta_bias = dt0 + torch.log(-torch.expm1(-dt0))
    return u, delta, A, B, C, D, z, delta_bias


def bytes_moved(shape, dtype):
    batch, dim, L, N, G = shape
    es = torch.empty((), dtype=dtype).element_size()
    big, bc = batch * dim * L * es, batch * G * N * L * es
    fwd = 4 * big + 2 * bc + batch * dim * N * 4  # u, delta, z in; out; B, C; last state
    bwd = 7 * big + 4 * bc  # u, delta, z, dout in; du, ddelta, dz out; B, C in; dB, dC out
    return fwd, bwd


def copy_bandwidth(nbytes=1 << 30):
    from triton.testing import do_bench

    src = torch.empty(nbytes // 4, device="cuda").uniform_()
    dst = torch.empty_like(src)
    ms = do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median")
    return 2 * nbytes / (ms * 1e-3) / 1e9


def check(shape, dtype):
    """Relative errors of out and every gradient against the float64 reference."""
    from vssm.kernels.selective_scan import triton_scan as ts
    from vssm.kernels.selective_scan.reference import selective_scan_reference

    ins = make_inputs(shape, dtype)
    leaves = [t.double().requires_grad_(True) for t in ins]
    out, last = selective_scan_reference(*leaves, True, True)
    dout = torch.randn_like(out).to(dtype).double()
    dlast = torch.randn_like(last)
    grads = torch.autograd.grad((out, last), leaves, (dout, dlast))
    o2, l2 = ts.triton_forward(*ins, True)
    g2 = ts.triton_backward(dout.to(dtype), dlast.float(), *ins, True)
    rel = lambda a, b: float((a.double() - b).norm() / b.norm())
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    errs = {"out": rel(o2, out), "last": rel(l2, last)}
    errs.update({n: rel(a, b) for n, a, b in zip(names, g2, grads)})
    return errs


def bench_one(shape, dtype, tiles=None, keep=False):
    """Median fwd and bwd ms with the given TILES overrides (and, with keep, the outputs)."""
    from triton.testing import do_bench

    from vssm.kernels.selective_scan import triton_scan as ts

    with _tiles(tiles):
        ins = make_inputs(shape, dtype)
        g = torch.Generator(device="cuda").manual_seed(1)
        dout = torch.randn(ins[0].shape, device="cuda", generator=g).to(dtype)
        dlast = torch.randn(shape[0], shape[1], shape[3], device="cuda", generator=g)
        fwd = do_bench(lambda: ts.triton_forward(*ins, True), warmup=25, rep=100, return_mode="median")
        bwd = do_bench(lambda: ts.triton_backward(dout, dlast, *ins, True), warmup=25, rep=100, return_mode="median")
        outs = None
        if keep:
            outs = [*ts.triton_forward(*ins, True), *ts.triton_backward(dout, dlast, *ins, True)]
    return fwd, bwd, outs


def breakdown(shape, dtype, tiles=None, iters=10):
    """Per-kernel GPU time (ms per call) of one forward and one backward, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    from vssm.kernels.selective_scan import triton_scan as ts

    with _tiles(tiles):
        ins = make_inputs(shape, dtype)
        dout = torch.randn(ins[0].shape, device="cuda").to(dtype)
        dlast = torch.randn(shape[0], shape[1], shape[3], device="cuda")
        res = {}
        for label, fn in (("fwd", lambda: ts.triton_forward(*ins, True)),
                          ("bwd", lambda: ts.triton_backward(dout, dlast, *ins, True))):
            fn()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(iters):
                    fn()
                torch.cuda.synchronize()
            times = {}
            for ev in prof.events():
                if ev.device_type == torch.autograd.DeviceType.CUDA:
                    times[ev.name] = times.get(ev.name, 0.0) + ev.device_time_total / 1e3 / iters
            res[label] = times
    return res


def kernel_resources():
    """Registers, spills and shared memory of every compiled Triton scan kernel so far."""
    from vssm.kernels.selective_scan import triton_scan, triton_scan_timelanes

    lines = []
    for mod in (triton_scan, triton_scan_timelanes):
        for name in dir(mod):
            fn = getattr(mod, name)
            cache = getattr(fn, "device_caches", None)
            if not name.startswith("_") or cache is None:
                continue
            for dev_cache in cache.values():
                kernels = dev_cache[0] if isinstance(dev_cache, tuple) else dev_cache
                for k in kernels.values():
                    try:
                        k._init_handles()
                        lines.append(f"{mod.__name__.split('.')[-1]}.{name}: regs {k.n_regs} spills {k.n_spills} "
                                     f"shared {k.metadata.shared} warps {k.metadata.num_warps}")
                    except Exception as e:  # noqa: BLE001 - diagnostics only
                        lines.append(f"{name}: {e}")
    return sorted(set(lines))


def _max_rel(outs, ref):
    return max(float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)) for a, b in zip(outs, ref))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--variants", default="default", help="'sweep', or a comma list of names in VARIANTS")
    ap.add_argument("--check", action="store_true", help="check against the float64 reference first")
    ap.add_argument("--json", default=None, help="write all results to this file")
    ap.add_argument("--breakdown", action="store_true", help="per-kernel times of each variant (torch.profiler)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_scan: needs a CUDA device")
    variants = list(VARIANTS) if args.variants == "sweep" else args.variants.split(",")
    shapes = args.shapes.split(",")
    dtypes = args.dtypes.split(",")

    if args.check:
        for name in shapes:
            for dt in dtypes:
                errs = check(SHAPES[name][0], DTYPES[dt])
                print(f"check {name} {dt}: " + " ".join(f"{k}={v:.1e}" for k, v in errs.items()), flush=True)

    bw = copy_bandwidth()
    print(f"device copy bandwidth: {bw:.0f} GB/s (read + write)", flush=True)
    rows, results = [], []
    for name in shapes:
        shape, cuda_f, cuda_b = SHAPES[name]
        for dt in dtypes:
            best_f = best_b = None
            first = None
            for var in variants:
                f, b, outs = bench_one(shape, DTYPES[dt], VARIANTS[var], keep=len(variants) > 1)
                # every variant must compute what the first one (checked by the tests) computes
                diff = "" if outs is None or first is None else f"  max rel diff vs {variants[0]}: {_max_rel(outs, first):.1e}"
                if first is None:
                    first = outs
                results.append(dict(shape=name, dtype=dt, variant=var, fwd_ms=f, bwd_ms=b))
                print(f"  {name:12s} {dt:4s} {var:16s} fwd {f:7.3f} ms  bwd {b:7.3f} ms{diff}", flush=True)
                if best_f is None or f < best_f[0]:
                    best_f = (f, var)
                if best_b is None or b < best_b[0]:
                    best_b = (b, var)
                del outs
                if args.breakdown:
                    for lbl, times in breakdown(shape, DTYPES[dt], VARIANTS[var]).items():
                        parts = ", ".join(f"{k[:40]} {v:.3f}" for k, v in sorted(times.items(), key=lambda kv: -kv[1]))
                        print(f"      {lbl}: {parts}", flush=True)
            del first
            fb, bb = bytes_moved(shape, DTYPES[dt])
            gf, gb = fb / best_f[0] / 1e6, bb / best_b[0] / 1e6
            rows.append(
                f"| {name} {shape} | {dt} | {best_f[0]:.3f} | {best_b[0]:.3f} | {gf:.0f} / {gb:.0f} | "
                f"{100 * gf / bw:.0f}% / {100 * gb / bw:.0f}% | {best_f[0] / cuda_f:.2f}x / {best_b[0] / cuda_b:.2f}x |"
                + (f" {best_f[1]} / {best_b[1]} |" if len(variants) > 1 else "")
            )
    print()
    print("| shape (batch, D, L, N, G) | dtype | fwd ms | bwd ms | GB/s fwd / bwd | % copy bw | vs CUDA fwd / bwd |"
          + (" best variant |" if len(variants) > 1 else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if len(variants) > 1 else ""))
    print("\n".join(rows))
    if args.breakdown:
        print("\n".join(kernel_resources()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(copy_gbps=bw, results=results), f, indent=1)


if __name__ == "__main__":
    main()
