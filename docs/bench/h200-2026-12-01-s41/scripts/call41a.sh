export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv,noheader
python .gpu/ab41.py vmamba_tiny_s1l8:224:128:train mambavision_t:224:128:train vmamba_small_s2l15:224:128:train 2>&1 | grep -v Warn | tee $OUT/ab.txt
bash .official/run.sh e2e --quick > $OUT/run_stdout.txt 2>&1; cat $OUT/e2e.md | head -14
timeout 120 python -m pytest -q -x tests/gpu/test_ss2d_gpu.py 2>&1 | tail -2 | tee $OUT/gpu_tests.txt
