export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm --format=csv,noheader; nproc; git log --oneline -1
timeout 200 python -m pytest -q tests/gpu/test_replay_gpu.py tests/gpu/test_projected_gpu.py 2>&1 | tail -4 | tee $OUT/gpu_tests.txt
timeout 200 python .gpu/ab44.py vim_tiny_patch16_224:1248:8 vim_tiny_patch16_224:224:8 vim_small_patch16_224:448:8 2>&1 | grep -v -i warn | tee $OUT/ab.txt
