. .gpu/stage.sh
export PYTHONWARNINGS=ignore
( time timeout 60 python -m pytest -q tests/gpu/test_projected_gpu.py -k "gate_kernels or keeps_less" 2>&1 | grep -E "passed|failed|Error|assert" | head -8 ) 2>&1 | tee $OUT/gputest.txt
timeout 200 bash .official/run.sh profile > $OUT/profile.log 2>&1; grep -A12 "### profile" $OUT/profile.log | head -14
