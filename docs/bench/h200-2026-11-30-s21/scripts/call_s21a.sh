. .gpu/stage.sh
export PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
timeout 150 python .gpu/walk_ab.py 2>&1 | tee $OUT/walk_ab.txt
timeout 120 python .gpu/vim_tm_ab.py 2>&1 | tee $OUT/vim_tm_ab.txt
( timeout 100 python -m pytest -q tests/gpu/test_selective_scan_gpu.py -k walking 2>&1 | tail -3 ) | tee $OUT/walktest.txt
timeout 180 bash .official/run.sh e2e --quick > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -34
