export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm --format=csv,noheader
for c in none reduce-overhead; do
  extra=""; [ $c != none ] && extra="--compile $c"
  timeout 280 python tools/benchmark.py --model vim_tiny_patch16_224 --img-sizes 1248 --batch-sizes 8 \
    --precisions bf16 --modes infer --warmup 10 --iters 30 $extra --out $OUT/bench_$c 2>&1 | grep -v -i warn | tail -6
done
