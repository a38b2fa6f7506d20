. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 60 python .gpu/walk_seg.py 2>&1 | tee $OUT/walk_seg.txt
( time timeout 150 python -m pytest -q tests/gpu/test_projected_gpu.py tests/gpu/test_selective_scan_gpu.py tests/gpu/test_conv1d_gpu.py -k "walk or batch_inner_rows or conv" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 360 bash .official/run.sh e2e > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -34
