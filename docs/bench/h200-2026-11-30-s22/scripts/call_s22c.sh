# s22 call C: GPU tests of the segmented forward (two-pass carry, 528 programs), then the full e2e of the tree
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
( time timeout 150 python -m pytest -q tests/gpu/test_selective_scan_gpu.py \
    -k "two_pass or long_bf16 or 6085 or 16384 or n1_walking" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 380 bash .official/run.sh e2e > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -34
