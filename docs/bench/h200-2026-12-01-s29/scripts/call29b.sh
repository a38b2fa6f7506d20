export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
timeout 200 python .gpu/smid29.py 2>&1 | tee $OUT/smid.txt
bash .official/run.sh e2e --quick 2>&1 | tail -40 > $OUT/e2e_log.txt; cp -r $OUT/../e2e* $OUT/ 2>/dev/null
timeout 170 python -m pytest -q -x -p no:cacheprovider tests/gpu/test_selective_scan_gpu.py -k "vim_s_bidirectional or long_bf16 or options or noncontiguous or lengths_states" 2>&1 | tail -6 | tee $OUT/gputest.txt
