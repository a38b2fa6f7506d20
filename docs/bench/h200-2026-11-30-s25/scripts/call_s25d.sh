# s25 call D: the parameter cache's GPU test (never run on a GPU before), then the full e2e on the checkout root.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
( time timeout 100 python -m pytest -q tests/gpu/test_param_cache_gpu.py 2>&1 | grep -v "^  \|Warn" | tail -15 ) 2>&1 | tee $OUT/gputest.txt
timeout 440 bash .official/run.sh e2e 2>&1 | tail -30 | tee $OUT/e2e_tail.txt
cp -r /root/out/* $OUT/ 2>/dev/null; ls $OUT
