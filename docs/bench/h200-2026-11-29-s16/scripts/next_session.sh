# Prepared for the next GPU session (not run here): from the checkout root, .official and .gpu carried
# (copy this file and the s15 records' scripts/stage.sh into .gpu/ first).
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 120 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -3        # the fused LayerNorm, first GPU run
timeout 60 python tools/bench_norm.py 2>&1 | tee $OUT/bench_norm.txt | tail -12           # against F.layer_norm, do_bench medians
mkdir -p $OUT/plain $OUT/ln; OUT0=$OUT
OUT=$OUT0/plain timeout 170 bash .official/run.sh e2e --quick > $OUT0/plain.log 2>&1; grep -A9 "### e2e" $OUT0/plain.log | tail -8
OUT=$OUT0/ln VSSM_FUSED_LN=1 timeout 170 bash .official/run.sh e2e --quick > $OUT0/ln.log 2>&1; grep -A9 "### e2e" $OUT0/ln.log | tail -8
