. .gpu/stage.sh
export PYTHONWARNINGS=ignore
( time timeout 60 python -m pytest -q tests/gpu/test_projected_gpu.py -k "gate_kernels or keeps_less" 2>&1 | tail -3 ) 2>&1 | tee $OUT/gputest.txt
timeout 40 python .gpu/gate_bench2.py 2>&1 | tee $OUT/gate_bench2.txt
timeout 420 bash .official/run.sh e2e > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -34
