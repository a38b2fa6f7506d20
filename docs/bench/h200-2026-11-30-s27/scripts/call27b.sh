# s27 call B: GPU tests of the changed paths, kernel A/B, training-step A/B in one process
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)|MHz" | tee -a $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD && xz -d < .official/official.tar.xz | tar -x -C $OD
timeout 200 python -m pytest -q -x tests/gpu/test_projected_gpu.py tests/gpu/test_compile_gpu.py tests/gpu/test_param_cache_gpu.py tests/gpu/test_conv1d_gpu.py -k "not slow" 2>&1 | tail -5 | tee $OUT/gputest.txt
timeout 120 python .gpu/ab27.py K 2>&1 | tee $OUT/kernels_ab.txt
timeout 400 python .gpu/ab27.py T vim_tiny_patch16_224 vmamba_tiny_s1l8 vim_small_patch16_224 2>&1 | tee $OUT/train_ab.txt
