export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)" | tee -a $OUT/gpu.txt
git log --oneline -1 | tee -a $OUT/gpu.txt
timeout 130 python -m pytest -q -p no:cacheprovider tests/gpu/test_selective_scan_gpu.py -k "states_middle or vim_s_bidirectional or projected" tests/gpu/test_projected_gpu.py 2>&1 | tail -8 | tee $OUT/gputest.txt
bash .official/run.sh e2e 2>&1 | tail -60 > $OUT/e2e_log.txt
