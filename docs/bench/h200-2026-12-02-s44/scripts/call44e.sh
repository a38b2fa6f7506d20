export PYTHONPATH=$PWD
nproc; git log --oneline -1
timeout 120 python -m pytest -q tests/gpu/test_replay_gpu.py 2>&1 | tail -3 | tee $OUT/gpu_tests.txt
timeout 170 python .gpu/ab44.py vim_tiny_patch16_224:224:128 vim_small_patch16_224:224:128 vim_tiny_patch16_224:1248:8 2>&1 | grep -v -i warn | tee $OUT/ab.txt
