#!/usr/bin/env python3
"""GPU timings of the depthwise conv op and of the Mamba mixers it serves (medians of triton's do_bench).

    python tools/bench_mixer.py [--dtype bf16] [--out results.json]

conv: the op (Triton, token-major, both Vim directions in one launch) against the F.conv1d grouped conv
the modules use elsewhere (channel-major, with the copies that layout costs) and, when the official
build is importable (``.official/run.sh`` unpacks it: add ``/tmp/official/so`` and
``/tmp/official/Vim/causal-conv1d`` to PYTHONPATH), causal-conv1d's CUDA kernel as Vim's official code calls it (one direction per call on a flipped copy). Bytes are the
floor (every tensor read or written once), so ``GB/s`` says how close to the copy bandwidth it runs.

mixers: forward + backward of a Vim-S mixer (bidirectional), a SiMBA-style one-direction mixer and a
MambaVision-T stage-3 mixer under bf16 autocast, with the conv op (CUDA path), with the F.conv1d
path, and composed (per-direction calls over flipped copies, the official computation).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _bench(fn, rep=100) -> float:
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=rep, return_mode="median")


def _official_conv():
    """causal-conv1d's function when its package imports (the official build on PYTHONPATH), else None."""
    try:
        from causal_conv1d.causal_conv1d_interface import causal_conv1d_fn
    except Exception as e:  # noqa: BLE001 - report and go on without it
        print(f"(official causal_conv1d not available: {e})")
        return None
    return causal_conv1d_fn


def bench_conv(dtype, batch, L, C, W=4, train=True) -> dict:
    from vssm.kernels import depthwise_conv1d

    dev = "cuda"
    xz = torch.randn(batch, L, 2 * C, device=dev, dtype=dtype)
    x = xz[..., :C]  # the x half of an in_proj output, token-major
    w = torch.randn(2, C, W, device=dev) * 0.3
    b = torch.randn(2, C, device=dev) * 0.1
    offsets = [-(W - 1), 0]
    e = torch.tensor([], dtype=dtype).element_size()
    res = {"shape": [batch, L, C, W], "dtype": str(dtype)}

    def op_fwd():
        return depthwise_conv1d(x, w, b, offsets, silu=True)

    ref = op_fwd()
    res["op_fwd_ms"] = _bench(op_fwd)
    fwd_bytes = batch * L * C * e * 3  # x once, two outputs
    res["op_fwd_GBps"] = fwd_bytes / res["op_fwd_ms"] / 1e6

    wg = torch.stack([w[0], w[1].flip(-1)], dim=1).reshape(2 * C, 1, W)
    bg = b.t().reshape(2 * C)

    def grouped_fwd():  # the modules' F.conv1d path (mirrored taps, one grouped conv)
        y = F.silu(F.conv1d(x.transpose(1, 2), wg.to(dtype), bg.to(dtype), padding=W - 1, groups=C))
        return y

    res["grouped_fwd_ms"] = _bench(grouped_fwd)
    causal = _official_conv()
    if causal is not None:
        xc = x.transpose(1, 2).contiguous()

        def official_fwd():  # Vim's official: one call per direction, the second over a flipped copy
            y0 = causal(x.transpose(1, 2).contiguous(), w[0].to(dtype), b[0].to(dtype), activation="silu")
            y1 = causal(x.transpose(1, 2).flip(-1).contiguous(), w[1].to(dtype), b[1].to(dtype), activation="silu")
            return y0, y1

        res["official_fwd_ms"] = _bench(official_fwd)
        y0 = causal(xc, w[0].to(dtype), b[0].to(dtype), activation="silu")
        res["official_vs_op_maxdiff"] = float((y0.transpose(1, 2).float() - ref[:, 0].float()).abs().max())
    if train:
        xg = x.detach().clone().requires_grad_(True)
        wq = w.clone().requires_grad_(True)
        bq = b.clone().requires_grad_(True)
        dout = torch.randn(batch, 2, L, C, device=dev, dtype=dtype)

        def op_fwd_bwd():
            y = depthwise_conv1d(xg, wq, bq, offsets, silu=True)
            return torch.autograd.grad(y, [xg, wq, bq], dout)

        res["op_fwd_bwd_ms"] = _bench(op_fwd_bwd)
        bwd_bytes = batch * L * C * e * (1 + 2 + 1)  # x, dout (two), dx
        res["op_bwd_GBps"] = bwd_bytes / (res["op_fwd_bwd_ms"] - res["op_fwd_ms"]) / 1e6
        wgq = wg.to(dtype).clone().requires_grad_(True)
        bgq = bg.to(dtype).clone().requires_grad_(True)
        dy = torch.randn(batch, 2 * C, L + W - 1, device=dev, dtype=dtype)

        def grouped_fwd_bwd():
            y = F.silu(F.conv1d(xg.transpose(1, 2), wgq, bgq, padding=W - 1, groups=C))
            return torch.autograd.grad(y, [xg, wgq, bgq], dy)

        res["grouped_fwd_bwd_ms"] = _bench(grouped_fwd_bwd)
    return res


def _profile(step, label, rows=12):
    """Top CUDA kernels of 3 steps of `step` (torch.profiler), printed."""
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    print(f"== {label}: CUDA kernels over 3 steps")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=70))


def bench_mixers(dtype, batch=128, profile_kernels=False) -> list[dict]:
    import vssm.mamba
    import vssm.models.mambavision as mv
    from vssm.mamba import Mamba

    rows = []
    cases = [
        ("vim_s_mixer", lambda: Mamba(384, d_state=16, bidirectional=True), (batch, 197, 384), (vssm.mamba,)),
        ("simba_mixer", lambda: Mamba(320, d_state=16), (batch, 196, 320), (vssm.mamba,)),
        ("mambavision_t_s3_mixer", lambda: mv.MambaVisionMixer(320, d_state=8, d_conv=3), (batch, 196, 320), (mv,)),
    ]
    for name, make, shape, mods in cases:
        m = make().cuda()
        x = torch.randn(*shape, device="cuda", requires_grad=True)

        def step(m=m, x=x):
            with torch.autocast("cuda", dtype=dtype):
                y = m(x)
            y.float().sum().backward()

        row = {"mixer": name, "shape": list(shape)}
        row["fused_conv_op_ms"] = _bench(step)
        if profile_kernels:
            _profile(step, f"{name} conv op")
        orig = [mod.has_fast_kernel for mod in mods]
        for mod in mods:
            mod.has_fast_kernel = lambda t: False
        row["fused_fconv1d_ms"] = _bench(step)
        if profile_kernels:
            _profile(step, f"{name} F.conv1d")
        for mod, o in zip(mods, orig):
            mod.has_fast_kernel = o
        if hasattr(m, "composed"):
            m.composed = True
            row["composed_ms"] = _bench(step)
            m.composed = False
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autocast("cuda", dtype=dtype):
            y = m(x)
        row["fwd_saved_MiB"] = (torch.cuda.memory_allocated() - base) / 2**20
        del y
        rows.append(row)
        print(json.dumps(row))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="bf16", choices=list(DTYPES))
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--profile", action="store_true", help="print each mixer path's top CUDA kernels")
    ap.add_argument("--no-conv", action="store_true", help="skip the conv-op timings")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU")
    dtype = DTYPES[args.dtype]
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "conv": [], "mixers": []}
    for batch, L, C, train in ((128, 197, 768, True), (8, 6085, 384, False), (128, 196, 640, True)):
        if args.no_conv:
            break
        r = bench_conv(dtype, batch, L, C, train=train)
        print(json.dumps(r))
        res["conv"].append(r)
    res["mixers"] = bench_mixers(dtype, profile_kernels=args.profile)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
