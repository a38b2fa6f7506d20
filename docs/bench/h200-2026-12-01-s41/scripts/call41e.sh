export PYTHONPATH=$PWD
timeout 200 python -m pytest -q tests/gpu/test_compile_gpu.py -k "vim and infer" 2>&1 | tail -3 | tee $OUT/compile_tests.txt
for c in none reduce-overhead; do
  extra=""; [ $c != none ] && extra="--compile $c"
  timeout 120 python tools/benchmark.py --model vim_tiny_patch16_224 --img-sizes 1248 --batch-sizes 8 \
    --precisions bf16 --modes infer --warmup 10 --iters 30 $extra --out $OUT/bench_$c 2>&1 | grep -v -i warn | tail -3
done
