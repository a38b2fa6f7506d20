"""Benchmark the depthwise conv op's Triton kernels on a GPU at the models' shapes, with a few tile sizes.

    python tools/bench_conv.py [--json FILE]

For each shape (Vim's two tap sets over a channel slice of in_proj's output, as the mixer calls it):
`triton.testing.do_bench` medians of the forward (token-major and channel-major output) and of the
backward, for the default tiles and a few others; the bytes each must move at the least as a share of
a device copy measured in the same run; and each variant's largest error against the PyTorch
definition (float32 accumulation), so a tile choice that breaks the result shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys

import torch
from bench_scan import _bench, copy_bandwidth  # the sibling tool's timing helpers (tools/ is on the path)

# name: batch, L, C (x is a channel slice of a (batch, L, 2C) tensor), offsets (W = 4)
SHAPES = {
    "vim_s_224": (128, 197, 768, (-3, 0)),
    "vim_ti_1248": (8, 6085, 384, (-3, 0)),
    "vim_ti_224": (128, 197, 384, (-3, 0)),
}
# (tokens, channels, warps) of a forward tile; (tokens, channels, tokens per program, warps) of the backward's
FWD_TILES = [(32, 128, 4), (128, 32, 4), (128, 64, 4), (64, 128, 4), (16, 128, 4), (64, 64, 4), (32, 256, 8),
             (128, 64, 8)]
BWD_TILES = [(16, 128, 256, 4), (32, 64, 256, 4), (32, 128, 256, 4), (16, 128, 512, 4), (8, 256, 256, 4),
             (16, 256, 256, 8)]


def _err(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="write the rows to this file")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_conv: needs a CUDA device")
    from vssm.kernels.conv1d.op import _reference_backward, depthwise_conv1d_reference
    from vssm.kernels.conv1d.triton_conv1d import DEFAULT_TILES, triton_conv_backward, triton_conv_forward

    gbps = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}: copy {gbps:.0f} GB/s", flush=True)
    rows = []
    for name in args.shapes.split(","):
        batch, L, C, offsets = SHAPES[name]
        K, W = len(offsets), 4
        torch.manual_seed(0)
        xz = torch.randn(batch, L, 2 * C, device="cuda", dtype=torch.bfloat16)
        x = xz[..., :C]  # stride 2C along tokens, as the mixer's view of in_proj's output
        w = torch.randn(K, C, W, device="cuda") * 0.3
        bias = torch.randn(K, C, device="cuda") * 0.1
        ref = depthwise_conv1d_reference(x, w, bias, offsets, True)  # (batch, K, L, C)
        dout = torch.randn_like(ref)
        rdx, rdw, rdb = _reference_backward(dout, x, w, bias, offsets, True)
        e = x.element_size()
        fwd_bytes = batch * L * C * e * (1 + K)  # x once, K outputs
        bwd_bytes = batch * L * C * e * (2 + K)  # x and dx, K douts
        for cm in (False, True):
            for bl, bc, warps in FWD_TILES:
                tiles = dataclasses.replace(DEFAULT_TILES, fwd_warps=warps,
                                            **(dict(fwd_cm_BL=bl, fwd_cm_BC=bc) if cm else dict(fwd_BL=bl, fwd_BC=bc)))
                try:
                    out = triton_conv_forward(x, w, bias, offsets, True, channel_major=cm, tiles=tiles)
                    err = _err(out, ref)
                    fwd = functools.partial(triton_conv_forward, x, w, bias, offsets, True, channel_major=cm,
                                            tiles=tiles)
                    ms = _bench(fwd)
                except Exception as ex:  # noqa: BLE001 - a variant that does not compile is reported
                    ms, err = float("nan"), float("nan")
                    print(name, bl, bc, warps, "failed:", str(ex).splitlines()[0], file=sys.stderr)
                floor = fwd_bytes / (gbps * 1e9) * 1e3
                rows.append(dict(shape=name, part="fwd channel-major" if cm else "fwd token-major", tiles=[bl, bc, warps],
                                 ms=ms, floor_share=floor / ms, max_rel_err=err))
                print(f"{name:12s} {rows[-1]['part']:18s} BL {bl:3d} BC {bc:3d} w{warps}: {ms:7.3f} ms "
                      f"({100 * floor / ms:4.0f}% of copy speed)  err {err:.1e}", flush=True)
        for bl, bc, chunk, warps in BWD_TILES:
            tiles = dataclasses.replace(DEFAULT_TILES, bwd_BL=bl, bwd_BC=bc, bwd_chunk=chunk, bwd_warps=warps)
            try:
                dx, dw, db = triton_conv_backward(dout, x, w, bias, offsets, True, tiles=tiles)
                err = max(_err(dx, rdx), _err(dw, rdw), _err(db, rdb))
                ms = _bench(functools.partial(triton_conv_backward, dout, x, w, bias, offsets, True, tiles=tiles))
            except Exception as ex:  # noqa: BLE001
                ms, err = float("nan"), float("nan")
                print(name, bl, bc, chunk, warps, "failed:", str(ex).splitlines()[0], file=sys.stderr)
            floor = bwd_bytes / (gbps * 1e9) * 1e3
            rows.append(dict(shape=name, part="bwd", tiles=[bl, bc, chunk, warps], ms=ms, floor_share=floor / ms,
                             max_rel_err=err))
            print(f"{name:12s} bwd                BL {bl:3d} BC {bc:3d} chunk {chunk:3d} w{warps}: {ms:7.3f} ms "
                  f"({100 * floor / ms:4.0f}% of copy speed)  err {err:.1e}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), copy_gbps=gbps, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
