. .gpu/stage.sh
export PYTHONWARNINGS=ignore
if timeout 150 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py > $OUT/lntest.txt 2>&1; then echo "LN GPU TESTS PASSED (merged tree)"; tail -2 $OUT/lntest.txt
else echo "LN GPU TESTS FAILED: e2e on the tree without the single-launch backward"; tail -30 $OUT/lntest.txt; patch -R -p1 -s < .gpu/helper.patch && rm -rf vssm/kernels && cp -r kernels vssm/kernels && echo reverted; fi
timeout 430 bash .official/run.sh e2e > $OUT/e2e.log 2>&1; grep -A40 "### e2e" $OUT/e2e.log | head -50
