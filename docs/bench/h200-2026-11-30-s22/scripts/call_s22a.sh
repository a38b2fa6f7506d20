# s22 call A: the two-pass forward carry (sweep at Vim-Ti high-resolution shapes), GPU tests of the final tree, e2e --quick
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv
cp .gpu/triton_carry_old.py vssm/kernels/selective_scan/
timeout 170 python .gpu/carry_sweep.py 2>&1 | tee $OUT/carry_sweep.txt
( time timeout 160 python -m pytest -q -x tests/gpu/test_projected_gpu.py tests/gpu/test_selective_scan_gpu.py \
    -k "walk or batch_inner_rows or full_size or long or benchmark_shapes" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 150 bash .official/run.sh e2e --quick > $OUT/e2e_quick.log 2>&1; grep -A14 "### e2e" $OUT/e2e_quick.log | head -16
