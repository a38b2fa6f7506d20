#!/usr/bin/env python3
"""Inference and training throughput (img/s) and peak memory of timm models, side by side.

    python tools/benchmark.py --model vim_tiny_patch16_224 --model deit_tiny_patch16_224 --img-sizes 224 512 \
        --batch-sizes 128 32 --precisions bf16 --modes infer train --out runs/bench
    python tools/benchmark.py --model vim_tiny_patch16_224 depth=12 embed_dim=256 --model resnet50 --device cpu

Each ``--model NAME [KEY=VALUE ...]`` is one model with its own create_model kwargs (``--models A B`` names
models without kwargs). Every combination of model x image size x batch size x precision x mode is timed:
``--warmup`` untimed iterations, then ``--iters`` timed ones; the median iteration time gives img/s. On CUDA
each iteration is timed with CUDA events and peak memory is ``torch.cuda.max_memory_allocated`` per
combination; on CPU iterations are timed with ``perf_counter`` and peak memory is not reported. Inference is a
forward under ``torch.inference_mode``; training is forward + backward + AdamW step (fp16 with timm's
NativeScaler). ``--batch-sizes`` pairs with ``--img-sizes`` when both have the same length (e.g. 128 at 224, 32
at 512), otherwise every size runs every batch size. Results go to ``<out>/benchmark.csv`` and
``<out>/benchmark.png``. ``--phases`` profiles one more step and splits it into forward, backward and optimizer
step: each phase's host ms, the GPU ms of the kernels it launched and the GPU's idle ms among them, and the kernels
launched per step (a phase whose GPU idles is bound by the host), also drawn in ``<out>/benchmark_phases.png``.
The work is done by ``vssm.train.benchmark``;
this is its command line.
"""

from vssm.train.benchmark import main
from vssm.train.cli import run_main

if __name__ == "__main__":
    run_main(lambda: main(description=__doc__.split("\n\n")[0]))
