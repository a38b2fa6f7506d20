. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 120 python .gpu/infer_prof.py 2>&1 | tee $OUT/infer_prof.txt
( time timeout 200 python -m pytest -q tests/gpu/test_conv1d_gpu.py tests/gpu/test_selective_scan_gpu.py -k "conv or test_walking_forward" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
