"""Benchmark the selective scan on a GPU: kernel shapes, and the multi-direction scan sections of the models.

    python tools/bench_scan.py                      # the four kernel shapes, fp32 and bf16: fwd / bwd ms
    python tools/bench_scan.py --sections           # Vim-S and VMamba-T scan sections: fused vs composed
    python tools/bench_scan.py --check              # fused multi-direction vs the float64 composed reference
    python tools/bench_scan.py --fwd-walk --no-kernels  # the walking forward (states in registers) vs the chunks
    python tools/bench_scan.py --fwd-smid --no-kernels  # the chunk forward's states-middle tiles vs states-last

Kernel shapes: `triton.testing.do_bench` medians of the op's forward and backward (z + D + delta_bias +
softplus), the fewest bytes they must move as a share of a device copy measured in the same run, and
the ratio to mamba_ssm's CUDA times measured on an H200 (shared/REFERENCE.md, 2026-11-29).

Sections (forward + backward through autograd, bf16 unless --dtype): the whole scan part of a layer,
from the tensors the projections produce to the combined output in natural order.
- vim_s: bidirectional, batch 128, L 197, d_inner 768, N 16, z, outputs averaged. composed = today's
  two calls with flips; fused = one call with orders natural + reverse (channel-major and token-major).
- vmamba_t_s1: four directions on 56 x 56, batch 128, d_inner 192, N 1, no z, summed. composed =
  cross_scan_2d + one call over (batch, 4 x 192, L) + cross_merge_2d; fused = one call with the four
  grid orders and u shared; official = VMamba's Triton cross-scan + oflex CUDA scan + cross-merge
  (when OFFICIAL_DIR points at the unpacked official code, as `.official/run.sh` leaves it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

# (batch, D, L, N, G): mamba_ssm CUDA fwd ms, bwd ms (fp32) on one H200 (shared/REFERENCE.md)
SHAPES = {
    "vim_s_224": ((128, 768, 197, 16, 1), 0.743, 2.261),
    "vim_ti_1248": ((8, 384, 6085, 16, 1), 0.670, 2.066),
    "vmamba_t_s1": ((128, 768, 3136, 1, 4), 2.159, 5.429),
    "n16_g4": ((64, 384, 3136, 16, 4), 3.410, 10.280),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
VMAMBA_ORDERS = ["rows", "cols", "rows_reverse", "cols_reverse"]


def _bench(fn, rep=200):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=rep, return_mode="median")


def copy_bandwidth(nbytes=1 << 30):
    src = torch.empty(nbytes // 4, device="cuda").uniform_()
    dst = torch.empty_like(src)
    return 2 * nbytes / (_bench(lambda: dst.copy_(src)) * 1e-3) / 1e9


def min_bytes(shape, dtype) -> tuple[int, int]:
    """Fewest bytes of the forward (u, delta, z, B, C in; out, last state out) and backward (those
    inputs and dout in; du, ddelta, dz, dB, dC out)."""
    batch, dim, L, N, G = shape
    e = torch.tensor([], dtype=dtype).element_size()
    tok, bc = batch * dim * L * e, 2 * batch * G * N * L * e
    return 4 * tok + bc + batch * dim * N * 4, 7 * tok + 2 * bc


def bench_kernels(names, dtypes, gbps):
    from vssm.kernels import selective_scan
    from vssm.kernels.selective_scan.cases import make_inputs

    rows = []
    for name in names:
        shape, cuda_fwd, cuda_bwd = SHAPES[name]
        batch, dim, L, N, G = shape
        for dn in dtypes:
            dtype = DTYPES[dn]
            x = make_inputs(batch, dim, L, N, G, dtype=dtype, device="cuda")
            leaves = {k: (v.requires_grad_(True) if v is not None else None) for k, v in x.items()}
            out = selective_scan(**leaves, delta_softplus=True, backend="triton")
            dout = torch.randn_like(out)
            wrt = [v for v in leaves.values() if v is not None]
            fwd = _bench(lambda x=x: selective_scan(**x, delta_softplus=True, backend="triton"))
            total = _bench(lambda lv=leaves, wrt=wrt, g=dout: torch.autograd.grad(
                selective_scan(**lv, delta_softplus=True, backend="triton"), wrt, g))
            bwd = total - fwd
            fb, bb = min_bytes(shape, dtype)
            rows.append(dict(shape=name, dims=shape, dtype=dn, fwd_ms=fwd, bwd_ms=bwd,
                             fwd_floor_ms=fb / gbps / 1e6, bwd_floor_ms=bb / gbps / 1e6,
                             vs_cuda_fwd=fwd / cuda_fwd, vs_cuda_bwd=bwd / cuda_bwd))
            print(f"{name:12s} {dn:5s} fwd {fwd:7.3f} ms ({fb / gbps / 1e6 / fwd:5.1%} of copy bw, {fwd / cuda_fwd:.2f}x CUDA)"
                  f"  bwd {bwd:7.3f} ms ({bb / gbps / 1e6 / bwd:5.1%}, {bwd / cuda_bwd:.2f}x CUDA)", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------
# sections


def _vim_inputs(dtype, token_major, batch=128, dim=768, L=197, N=16):
    from vssm.kernels.selective_scan.cases import make_inputs

    return make_inputs(batch, dim, L, N, 1, K=2, shared=("z",), dtype=dtype, device="cuda",
                       token_major=token_major, seed=1)


def vim_fused(x):
    from vssm.kernels import selective_scan

    return selective_scan(**x, delta_softplus=True, orders=["natural", "reverse"], combine="mean")


def vim_composed(x):
    from vssm.kernels import selective_scan

    def k(name, i):
        t = x[name]
        return None if t is None else t[i] if name in ("A", "D", "delta_bias") else t[:, i]

    y_f = selective_scan(k("u", 0), k("delta", 0), k("A", 0), k("B", 0), k("C", 0), k("D", 0), x["z"].contiguous(),
                         k("delta_bias", 0), True)
    f = lambda t: t.flip(-1)
    y_b = selective_scan(f(k("u", 1)), f(k("delta", 1)), k("A", 1), f(k("B", 1)), f(k("C", 1)), k("D", 1), f(x["z"]),
                         k("delta_bias", 1), True).flip(-1)
    return (y_f + y_b) / 2


def _vmamba_inputs(dtype, token_major, batch=128, dim=192, H=56, W=56, N=1):
    from vssm.kernels.selective_scan.cases import make_inputs

    x = make_inputs(batch, dim, H * W, N, 1, K=4, shared=("u",), dtype=dtype, device="cuda", z=False,
                    token_major=token_major, seed=2)
    if token_major:  # a channels-last SS2D makes delta (batch, L, K, D): one (L, K*D) row per token
        x["delta"] = x["delta"].permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    return x


def vmamba_fused(x, H=56, W=56):
    from vssm.kernels import selective_scan

    return selective_scan(**x, delta_softplus=True, orders=VMAMBA_ORDERS, grid=(H, W))


def vmamba_composed(x, H=56, W=56, in_scan_order=False):
    """Today's SS2D core. delta/B/C are indexed by scan position there; with ``in_scan_order`` they are
    taken to each direction's order first, so that the result equals the fused call on the same x."""
    from vssm.kernels import selective_scan
    from vssm.kernels.selective_scan import order_index
    from vssm.ss2d import cross_merge_2d, cross_scan_2d

    u = x["u"]
    batch, dim, L = u.shape
    K = 4
    delta, B, C = x["delta"], x["B"][:, :, 0], x["C"][:, :, 0]
    if in_scan_order:
        idx = order_index(VMAMBA_ORDERS, L, (H, W), u.device).long()
        delta, B, C = (torch.stack([t[:, k].index_select(-1, idx[k]) for k in range(K)], 1) for t in (delta, B, C))
    xs = cross_scan_2d(u.reshape(batch, dim, H, W)).reshape(batch, K * dim, L)
    ys = selective_scan(xs, delta.reshape(batch, K * dim, L), x["A"].reshape(K * dim, -1), B, C,
                        x["D"].reshape(-1), delta_bias=x["delta_bias"].reshape(-1), delta_softplus=True)
    return cross_merge_2d(ys.view(batch, K, dim, L), H, W).reshape(batch, dim, L)


def _official_vmamba():
    """VMamba's cross_scan_fn / cross_merge_fn (Triton) and oflex selective_scan_fn, or None."""
    root = os.environ.get("OFFICIAL_DIR")
    if not root or not os.path.isdir(os.path.join(root, "VMamba")):
        return None
    for p in (os.path.join(root, "so"), os.path.join(root, "VMamba", "classification", "models")):
        if p not in sys.path:
            sys.path.insert(0, p)
    from csm_triton import cross_merge_fn, cross_scan_fn
    from csms6s import selective_scan_fn

    def run(x, H=56, W=56):
        u = x["u"]
        batch, dim, L = u.shape
        K = 4
        xs = cross_scan_fn(u.reshape(batch, dim, H, W), in_channel_first=True, out_channel_first=True)
        ys = selective_scan_fn(xs.reshape(batch, K * dim, L), x["delta"].reshape(batch, K * dim, L),
                               x["A"].reshape(K * dim, -1), x["B"][:, :, 0].contiguous(), x["C"][:, :, 0].contiguous(),
                               x["D"].reshape(-1), x["delta_bias"].reshape(-1), True, True, backend="oflex")
        return cross_merge_fn(ys.view(batch, K, dim, H, W), in_channel_first=True, out_channel_first=True)

    return run


def _time_section(fn, x):
    leaves = {k: (v.detach().requires_grad_(True) if v is not None else None) for k, v in x.items()}
    wrt = [v for v in leaves.values() if v is not None]
    out = fn(leaves)
    dout = torch.randn_like(out)
    fwd = _bench(lambda: fn(x), rep=300)
    total = _bench(lambda: torch.autograd.grad(fn(leaves), wrt, dout), rep=300)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    torch.autograd.grad(fn(leaves), wrt, dout)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return fwd, total, peak


def bench_sections(dtype, which=("vim_s", "vmamba_t_s1")):
    rows = []
    official = _official_vmamba()
    plans = [
        ("vim_s", "composed", vim_composed, lambda: _vim_inputs(dtype, False)),
        ("vim_s", "fused", vim_fused, lambda: _vim_inputs(dtype, False)),
        ("vim_s", "fused token-major", vim_fused, lambda: _vim_inputs(dtype, True)),
        ("vmamba_t_s1", "composed", vmamba_composed, lambda: _vmamba_inputs(dtype, False)),
        ("vmamba_t_s1", "fused", vmamba_fused, lambda: _vmamba_inputs(dtype, False)),
        ("vmamba_t_s1", "fused token-major", vmamba_fused, lambda: _vmamba_inputs(dtype, True)),
    ]
    if official is not None:
        plans.append(("vmamba_t_s1", "official", official, lambda: _vmamba_inputs(dtype, False)))
    for section, impl, fn, make in plans:
        if section not in which:
            continue
        x = make()
        fwd, total, peak = _time_section(fn, x)
        rows.append(dict(section=section, impl=impl, fwd_ms=fwd, fwd_bwd_ms=total, peak_mib=peak))
        print(f"{section:12s} {impl:18s} fwd {fwd:7.3f} ms  fwd+bwd {total:7.3f} ms  peak {peak:8.1f} MiB", flush=True)
        del x
        torch.cuda.empty_cache()
    for section in which:
        base = next(r for r in rows if r["section"] == section and r["impl"] == "composed")
        for r in rows:
            if r["section"] == section:
                r["speedup_vs_composed"] = base["fwd_bwd_ms"] / r["fwd_bwd_ms"]
    off = next((r for r in rows if r["impl"] == "official"), None)
    if off is not None:
        for r in rows:
            if r["section"] == "vmamba_t_s1":
                r["speedup_vs_official"] = off["fwd_bwd_ms"] / r["fwd_bwd_ms"]
    return rows


def check_sections(dtype):
    """Fused vs composed at full size: outputs and every gradient, relative to the composed path in
    float64 on the reference backend."""
    from vssm.kernels.selective_scan.cases import rel_error

    res = {}
    for name, fused, composed, make in (("vim_s", vim_fused, vim_composed, _vim_inputs),
                                        ("vmamba_t_s1", vmamba_fused, lambda x: vmamba_composed(x, in_scan_order=True),
                                         _vmamba_inputs)):
        for tm in (False, True):
            x = make(dtype, tm)
            leaves = {k: (v.detach().requires_grad_(True) if v is not None else None) for k, v in x.items()}
            wrt = [k for k, v in leaves.items() if v is not None]
            out = fused(leaves)
            dout = torch.randn_like(out)
            grads = torch.autograd.grad(out, [leaves[k] for k in wrt], dout)
            os.environ["VSSM_SCAN_BACKEND"] = "reference"
            try:
                ref = {k: v.detach().double().requires_grad_(True) for k, v in leaves.items() if v is not None}
                full = {k: ref.get(k) for k in leaves}
                ro = composed(full)
                rg = torch.autograd.grad(ro, [ref[k] for k in wrt], dout.double())
            finally:
                del os.environ["VSSM_SCAN_BACKEND"]
            errs = {"out": rel_error(out, ro)}
            errs.update({k: rel_error(a, b) for k, a, b in zip(wrt, grads, rg)})
            res[f"{name}{' token-major' if tm else ''}"] = errs
            print(name, "token-major" if tm else "channel-major", {k: f"{v:.1e}" for k, v in errs.items()}, flush=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--sections", nargs="?", const="vim_s,vmamba_t_s1", default=None,
                    help="time the models' scan sections (comma list: vim_s, vmamba_t_s1)")
    ap.add_argument("--no-kernels", action="store_true", help="skip the kernel shapes")
    ap.add_argument("--dtype", default="bf16", choices=list(DTYPES), help="dtype of --sections and --check")
    ap.add_argument("--check", action="store_true", help="fused vs the float64 composed reference at full size")
    ap.add_argument("--n1", action="store_true", help="N = 1 backward kernels and tiles on the VMamba section")
    ap.add_argument("--fwd-walk", action="store_true",
                    help="forward kernels at N >= 2: the chunk kernel against the walking one (Tiles.fwd_walk)")
    ap.add_argument("--fwd-smid", action="store_true",
                    help="the chunk forward's states-last tiles against its states-middle ones (Tiles.fwd_smid)")
    ap.add_argument("--json", default=None, help="write all results to this file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_scan: needs a CUDA device")
    res = {"device": torch.cuda.get_device_name(), "copy_gbps": copy_bandwidth()}
    print(f"{res['device']}: copy bandwidth {res['copy_gbps']:.0f} GB/s", flush=True)
    if args.check:
        res["check"] = check_sections(DTYPES[args.dtype])
    if not args.no_kernels:
        res["kernels"] = bench_kernels(args.shapes.split(","), args.dtypes.split(","), res["copy_gbps"])
    if args.sections:
        res["sections"] = bench_sections(DTYPES[args.dtype], args.sections.split(","))
    if args.n1:
        res["n1_backward"] = bench_n1_backward(DTYPES[args.dtype])
    if args.fwd_walk:
        res["fwd_walk"] = bench_fwd_walk(DTYPES[args.dtype])
    if args.fwd_smid:
        res["fwd_smid"] = bench_fwd_smid(DTYPES[args.dtype])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


def bench_n1_backward(dtype):
    """The N = 1 backward kernels on the VMamba-T stage-1 section in both layouts, with a few tile sizes."""
    from vssm.kernels.selective_scan.op import _normalize_orders
    from vssm.kernels.selective_scan.triton_bwd import triton_backward_chunks
    from vssm.kernels.selective_scan.triton_bwd_n1 import triton_backward_walk
    from vssm.kernels.selective_scan.triton_common import Tiles

    rows = []
    for tm in (False, True):
        x = _vmamba_inputs(dtype, tm)
        *nf, index = _normalize_orders(*(x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")),
                                       VMAMBA_ORDERS, (56, 56))
        u = nf[0]
        dout = torch.randn(u.shape[0], u.shape[2], u.shape[3], device="cuda", dtype=dtype)
        if tm:
            dout = dout.transpose(1, 2).contiguous().transpose(1, 2)
        dlast = torch.zeros(u.shape[0], 4, u.shape[2], 1, device="cuda")
        variants = {"walk T32": (triton_backward_walk, Tiles()),
                    "walk T32 tile256": (triton_backward_walk, Tiles(walk_tile=256)),
                    "chunks T8": (triton_backward_chunks, Tiles(bwd_T_n1=8)),
                    "chunks T16": (triton_backward_chunks, Tiles(bwd_T_n1=16)),
                    "chunks T32": (triton_backward_chunks, Tiles(bwd_T_n1=32)),
                    "chunks T32 dn32": (triton_backward_chunks, Tiles(bwd_T_n1=32, bwd_dn=32))}
        for name, (fn, tiles) in variants.items():
            try:
                args = (dout, dlast, *nf, index, True, 1.0)
                ms = _bench(lambda fn=fn, tiles=tiles, args=args: fn(*args, tiles=tiles))
            except Exception as e:  # noqa: BLE001 - a variant that does not compile is reported, not fatal
                ms = float("nan")
                print(name, "failed:", str(e).splitlines()[0])
            layout = "token-major" if tm else "channel-major"
            rows.append(dict(layout=layout, variant=name, bwd_ms=ms))
            print(f"n1 bwd {layout:13s} {name:18s} {ms:7.3f} ms", flush=True)
    return rows


# (batch, D, L, N, G), orders (None: one direction), token-major u / delta / z
WALK_SHAPES = {
    "vim_s_224 both directions": ((128, 768, 197, 16, 1), ["natural", "reverse"], True),
    "vim_ti_1248 both directions": ((8, 384, 6085, 16, 1), ["natural", "reverse"], True),
    "vim_s_224": ((128, 768, 197, 16, 1), None, False),
    "mambavision_t stage 3 (N 8)": ((128, 160, 196, 8, 1), None, False),
    "n16_g4": ((64, 384, 3136, 16, 4), None, False),
}


def bench_fwd_walk(dtype, shapes=None, device="cuda", timer=None):
    """Forward only: the chunk kernel (default tiles) against the walking kernel with a few channel blocks,
    and the largest difference of the walk's output from the chunk kernel's (relative to its largest value)."""
    import dataclasses

    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES

    base = dataclasses.replace(DEFAULT_TILES, fwd_walk=False)
    variants = {"chunks": base}
    for bd, warps in ((128, 4), (64, 2), (32, 1), (256, 8)):
        variants[f"walk bd{bd} w{warps}"] = dataclasses.replace(base, fwd_walk=True, fwd_walk_bd=bd, fwd_walk_warps=warps,
                                                                fwd_walk_loop_min_programs=1 << 30)
        # directions: one program adding them all into out vs one program per direction
        variants[f"walk bd{bd} w{warps} loop"] = dataclasses.replace(
            base, fwd_walk=True, fwd_walk_bd=bd, fwd_walk_warps=warps, fwd_walk_loop_min_programs=1)
    return _bench_forward_variants(variants, shapes or WALK_SHAPES, dtype, device, False, timer)


# (batch, D, L, N, G), orders, token-major: the chunk forward's shapes in the models (training: a backward follows)
SMID_SHAPES = {
    "vim_ti_224 training": ((128, 384, 197, 16, 1), ["natural", "reverse"], False),
    "vim_s_224 training": ((128, 768, 197, 16, 1), ["natural", "reverse"], False),
    "mambavision_t stage 3 (N 8) training": ((128, 160, 196, 8, 1), None, False),
    "vim_ti_512 batch 32": ((32, 384, 1025, 16, 1), ["natural", "reverse"], False),
    "vim_ti_1248 batch 8": ((8, 384, 6085, 16, 1), ["natural", "reverse"], False),
    "vim_ti_1248 batch 2": ((2, 384, 6085, 16, 1), ["natural", "reverse"], False),
}


def bench_fwd_smid(dtype, shapes=None, device="cuda", timer=None):
    """Forward only, a backward to follow (no walk): the chunk kernel's states-last tiles against its
    states-middle ones (`Tiles.fwd_smid`) with the default chunk length, without its doubling, and with
    chunks twice as long; the largest difference from the states-last output."""
    import dataclasses

    from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES

    base = dataclasses.replace(DEFAULT_TILES, fwd_walk=False)
    variants = {
        "states-last": dataclasses.replace(base, fwd_smid=False),
        "default": base,
        "smid": dataclasses.replace(base, fwd_smid=True),
        "smid no doubling": dataclasses.replace(base, fwd_smid=True, fwd_smid_long_max_programs=0),
        "smid T x2": dataclasses.replace(base, fwd_smid=True, fwd_smid_T=2 * base.fwd_smid_T),
    }
    return _bench_forward_variants(variants, shapes or SMID_SHAPES, dtype, device, True, timer)


def _bench_forward_variants(variants, shapes, dtype, device, backward, timer):
    """`triton_forward` per (shape, tiles variant): median ms (`timer`, default do_bench) and the largest
    difference from the first variant's output (relative to its largest value)."""
    from vssm.kernels.selective_scan.cases import make_inputs
    from vssm.kernels.selective_scan.op import prepare
    from vssm.kernels.selective_scan.triton_fwd import triton_forward

    timer = timer or _bench
    rows = []
    for name, ((batch, dim, L, N, G), orders, tm) in shapes.items():
        K = None if orders is None else len(orders)
        x = make_inputs(batch, dim, L, N, G, K=K, shared=("z",) if K else (), dtype=dtype, device=device,
                        token_major=tm)
        args = prepare(*(x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")), True, orders, None,
                       "mean" if K else "sum", "triton", grad=False)[:11]
        ref = None
        for label, tiles in variants.items():
            def run(tiles=tiles, args=args):
                return triton_forward(*args, backward=backward, tiles=tiles)

            try:
                out = run()[0]
                ms = timer(run)
                ref = out.float() if ref is None else ref
                err = float((out.float() - ref).abs().max() / ref.abs().max())
            except Exception as e:  # noqa: BLE001 - a variant that does not compile is reported, not fatal
                ms, err = float("nan"), float("nan")
                print(name, label, "failed:", str(e).splitlines()[0])
            rows.append(dict(shape=name, dims=[batch, dim, L, N, G], variant=label, fwd_ms=ms, max_rel_diff=err))
            print(f"fwd {name:36s} {label:18s} {ms:8.3f} ms  diff {err:.1e}", flush=True)
    return rows


if __name__ == "__main__":
    main()
