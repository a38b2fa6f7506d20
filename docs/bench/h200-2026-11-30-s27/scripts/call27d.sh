# s27 call D: GPU tests of the changed paths (SS2D core, conv op, projected scan), the conv g kernel against s26's forms
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
git log --oneline | head -1 | tee -a $OUT/gpu.txt
timeout 330 python -m pytest -q -p no:cacheprovider --durations=5 tests/gpu/test_ss2d_gpu.py tests/gpu/test_conv1d_gpu.py tests/gpu/test_projected_gpu.py 2>&1 | tail -12 | tee $OUT/gputest.txt
timeout 150 python .gpu/conv_g_var.py 2>&1 | tee $OUT/conv_g_var.txt
