# s22 call B: GPU tests of the tree (the carry pair fixed), the carry A/B where segments are the default, e2e --quick
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
cp .gpu/triton_carry_old.py vssm/kernels/selective_scan/
( time timeout 170 python -m pytest -q tests/gpu/test_projected_gpu.py tests/gpu/test_selective_scan_gpu.py \
    -k "walk or batch_inner_rows or full_size or long or benchmark_shapes" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 120 python .gpu/carry_ab.py 2>&1 | tee $OUT/carry_ab.txt
timeout 150 bash .official/run.sh e2e --quick > $OUT/e2e_quick.log 2>&1; grep -A10 "### e2e" $OUT/e2e_quick.log | head -10
