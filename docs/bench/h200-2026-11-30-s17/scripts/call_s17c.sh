. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 100 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -3
timeout 60 python .gpu/lndiag.py 0,3 2>&1 | tee $OUT/lndiag.txt
for f in 0 1 0 1; do VSSM_FUSED_LN=$f timeout 90 python .gpu/vmk.py vmamba_tiny_s1l8 2>&1 | tee $OUT/vmk_t_ln$f.txt | head -${HEADN:-14}; done
VSSM_FUSED_LN=1 timeout 170 bash .official/run.sh e2e --quick > $OUT/ln.log 2>&1; grep -A9 "### e2e" $OUT/ln.log | tail -8
