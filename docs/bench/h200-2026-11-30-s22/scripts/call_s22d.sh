# s22 call D: the two-pass carry GPU test alone; MambaVision training with the walk allowed under a backward (A/B)
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
( time timeout 100 python -m pytest -q tests/gpu/test_selective_scan_gpu.py -k "two_pass" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 200 python .gpu/mv_walk_ab.py 2>&1 | tee $OUT/mv_walk_ab.txt
