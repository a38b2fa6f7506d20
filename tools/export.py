#!/usr/bin/env python3
"""Export a backbone (no classifier head) from a checkpoint as safetensors plus a JSON description.

    python tools/export.py runs/vmamba_t/best.pth --output exports/vmamba_t
    python tools/export.py vssm1_tiny_0230s_ckpt_epoch_264.pth --model vmamba_tiny_s1l8 --output exports/vmamba_t
    python tools/export.py mask_rcnn_vssm_fpn_coco_tiny.pth --model vmamba_tiny_s1l8 --output exports/vmamba_t_coco
    python tools/export.py runs/vmamba_t/best.pth --output exports/vmamba_t --onnx --onnx-size 224

Writes OUTPUT.safetensors (weights; the description also sits in its header) and OUTPUT.json (model name,
kwargs, out_indices, feature_info, where the weights came from), and prints what was used from the file.
A training checkpoint of tools/train.py names its model and kwargs (``--ema`` exports its EMA weights);
other files need ``--model`` (and ``--model-kwargs`` if it was built with any). Detection checkpoints
(mmdet ``backbone.``, detectron2 ``backbone.net.`` / ``backbone.bottom_up.``) give their backbone's keys.
Read the export back with ``vssm.detection.load_backbone(OUTPUT.safetensors)``, or pass it as
``checkpoint=`` to ``vssm.detection.backbone_with_fpn`` / ``maskrcnn`` / ...
``--onnx`` also writes OUTPUT.onnx: that backbone as an ONNX graph (input ``x`` (batch, 3, S, S) with S from
``--onnx-size`` and a dynamic batch, one output per feature map, the selective scan as ONNX ``Scan`` nodes).

The work is done by ``vssm.detection.export_backbone`` and ``vssm.onnx.export_onnx``; this is their command line.
"""

from __future__ import annotations

import argparse
import re
import sys
import time


def parse_kwargs(items: list[str] | None) -> dict:
    """``["depths=[2, 2, 8, 2]", "embed_dim=96"]`` -> dict, values parsed as YAML."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--model-kwargs: expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="training checkpoint, official classification or detection checkpoint, or export")
    p.add_argument("--output", required=True, help="output path without suffix (OUTPUT.safetensors, OUTPUT.json)")
    p.add_argument("--model", default=None, help="model name (default: from a training checkpoint)")
    p.add_argument("--model-kwargs", nargs="*", default=None, metavar="KEY=VALUE", help="create_model kwargs")
    p.add_argument("--out-indices", nargs="+", type=int, default=None,
                   help="stages of a hierarchical model (default all) or the one block of a plain model (default last)")
    p.add_argument("--ema", action="store_true", help="export the EMA weights of the checkpoint")
    p.add_argument("--no-strict", action="store_true",
                   help="export what fits even if the file looks like another model or configuration")
    p.add_argument("--onnx", action="store_true", help="also write OUTPUT.onnx, the backbone as an ONNX graph")
    p.add_argument("--onnx-size", type=int, default=224, metavar="S",
                   help="input height and width of the ONNX graph (default 224; the batch stays dynamic)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vssm.detection import export_backbone

    description, report = export_backbone(
        args.checkpoint,
        args.output,
        model_name=args.model,
        model_kwargs=parse_kwargs(args.model_kwargs),
        out_indices=args.out_indices,
        ema=args.ema,
        strict=not args.no_strict,
    )
    print(report)
    chans = ", ".join(f"{f['num_chs']}@{f['reduction']}" for f in description["feature_info"])
    stem = re.sub(r"\.(safetensors|json)$", "", args.output)
    print(f"wrote {stem}.safetensors and {stem}.json: {description['model_name']}, maps {chans} (channels@stride)")
    if args.onnx:
        from vssm.detection import load_backbone
        from vssm.onnx import OPSET, export_onnx

        start = time.perf_counter()
        export_onnx(load_backbone(f"{stem}.safetensors").eval(), f"{stem}.onnx", img_size=args.onnx_size)
        print(f"wrote {stem}.onnx in {time.perf_counter() - start:.1f} s: opset {OPSET}, input x (batch, 3, "
              f"{args.onnx_size}, {args.onnx_size}), {len(description['feature_info'])} outputs")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
