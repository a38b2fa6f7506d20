export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader; nproc
timeout 100 python -m pytest -q tests/gpu/test_replay_gpu.py 2>&1 | tail -3 | tee $OUT/gpu_tests.txt
bash .official/run.sh e2e profile > $OUT/run_stdout.txt 2>&1; tail -40 $OUT/run_stdout.txt
