. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 100 python -m pytest -q -x tests/gpu/test_conv1d_gpu.py 2>&1 | grep -E "passed|failed|^FAILED|^E " | head -8
timeout 300 python -m pytest -q tests/gpu/test_compile_gpu.py --durations=0 2>&1 | grep -E "passed|failed|^FAILED|^E |s call" | head -30
timeout 100 python tools/benchmark.py --models mambavision_t --img-sizes 224 --batch-sizes 128 --precisions bf16 --modes infer train --compile reduce-overhead --out $OUT/ro_mv 2>&1 | grep -iE "img/s|error" | tail -4
timeout 120 python tools/benchmark.py --models vim_tiny_patch16_224 --img-sizes 1248 --batch-sizes 8 --precisions bf16 --modes infer --compile reduce-overhead --out $OUT/ro_vim 2>&1 | grep -iE "img/s|error" | tail -4
