export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm --format=csv,noheader; nproc; python -c "import torch, triton; print(torch.__version__, triton.__version__)"
timeout 240 python -m pytest -q tests/gpu/test_replay_gpu.py tests/gpu/test_fast_launch_gpu.py 2>&1 | tail -8 | tee $OUT/gpu_tests.txt
timeout 200 python .gpu/ab44.py vim_tiny_patch16_224:1248:8 vim_small_patch16_224:224:128 vim_tiny_patch16_224:224:8 2>&1 | grep -v -i warn | tee $OUT/ab.txt
bash .official/run.sh e2e --quick > $OUT/run_stdout.txt 2>&1; head -14 $OUT/e2e.md
