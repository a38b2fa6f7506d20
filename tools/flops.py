#!/usr/bin/env python3
"""Parameters and GFLOPs of any timm model with fvcore (and vssm's op handles).

    python tools/flops.py --model vmamba_tiny_s1l8 --img-size 224
    python tools/flops.py --model vim_tiny_patch16_224 --img-size 224 512 1248 --json
    python tools/flops.py --all            # the vssm zoo next to the papers' figures

Convention (``vssm.flops``): fvcore, one multiply-add = one FLOP, element-wise ops not counted; the
selective scan counts ``9*B*L*D*N + B*D*L`` (the official VMamba count, z gate and direction
plumbing not counted); ``scaled_dot_product_attention`` its two matmuls; FFTs ``2.5*n*log2(n)``
per complex transform of n points (half for real ones). GFLOPs are per image (batch 1). The work is done
by ``vssm.train.flops``; this is its command line.
"""

from vssm.train.cli import run_main
from vssm.train.flops import main

if __name__ == "__main__":
    run_main(lambda: main(description=__doc__.split("\n\n")[0]))
