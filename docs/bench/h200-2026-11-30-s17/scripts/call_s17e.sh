. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 80 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -2
timeout 60 python .gpu/lncheck.py 2>&1 | tail -3
timeout 420 bash .official/run.sh e2e > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -40
