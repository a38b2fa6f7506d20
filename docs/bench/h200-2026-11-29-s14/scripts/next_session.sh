. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 30 python .gpu/sumdir.py 2>&1 | tail -3
timeout 50 python -m pytest -q -x tests/gpu/test_conv1d_gpu.py 2>&1 | grep -E "passed|failed|^E " | head -5
timeout 40 python tools/benchmark.py --models vim_tiny_patch16_224 --img-sizes 1248 --batch-sizes 8 --precisions bf16 --modes infer --out $OUT/b1248 2>&1 | grep -iE "img/s|error" | tail -2
timeout 40 python tools/bench_conv.py --shapes vim_s_224 > $OUT/conv.txt 2>&1; sed 's/ (.*copy speed)//' $OUT/conv.txt | tail -22
