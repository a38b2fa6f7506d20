. .gpu/stage.sh
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official
export OFFICIAL_DIR=/tmp/official PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv,noheader
timeout 60 python .gpu/diag.py official $OUT 2>&1 | grep -v Warning | tail -8
timeout 240 python .gpu/diag.py project $OUT 2>&1 | grep -v Warning | tail -30
timeout 130 python tools/benchmark.py --models mambavision_t --img-sizes 224 --batch-sizes 128 --precisions bf16 --modes infer --compile reduce-overhead --out $OUT/ro_mv 2>&1 | grep -iE "img/s|error|mambavision" | tail -4
timeout 150 python tools/benchmark.py --models vim_tiny_patch16_224 --img-sizes 1248 --batch-sizes 8 --precisions bf16 --modes infer --compile reduce-overhead --out $OUT/ro_vim 2>&1 | grep -iE "img/s|error|vim" | tail -4
timeout 60 python tools/benchmark.py --models vim_tiny_patch16_224 --img-sizes 1248 --batch-sizes 8 --precisions bf16 --modes infer --out $OUT/eager_vim 2>&1 | grep -iE "img/s|error|vim" | tail -4
