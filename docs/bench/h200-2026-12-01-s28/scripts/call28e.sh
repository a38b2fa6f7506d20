export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)" | tee -a $OUT/gpu.txt
timeout 140 python -m pytest -q -p no:cacheprovider tests/gpu/test_selective_scan_gpu.py tests/gpu/test_projected_gpu.py -k "walking_forward or walks" 2>&1 | tail -4 | tee $OUT/gputest.txt
bash .official/run.sh e2e profile 2>&1 | tail -80 > $OUT/e2e_log.txt
