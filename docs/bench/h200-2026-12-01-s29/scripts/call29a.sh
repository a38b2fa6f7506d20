export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
timeout 300 python .gpu/smid29.py 2>&1 | tee $OUT/smid.txt
timeout 200 python -m pytest -q -x -p no:cacheprovider tests/gpu/test_selective_scan_gpu.py 2>&1 | tail -6 | tee $OUT/gputest.txt
