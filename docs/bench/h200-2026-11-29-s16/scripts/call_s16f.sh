. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 60 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py 2>&1 | tail -1
timeout 75 python -m pytest -q -x tests/gpu/test_selective_scan_gpu.py -k "vim_s_bidirectional or vmamba_t_stage1 or noncontiguous or options" > $OUT/gpu_scan_tests.txt 2>&1; grep -E "passed|failed|^E " $OUT/gpu_scan_tests.txt | head -3; tail -c 300 $OUT/gpu_scan_tests.txt
timeout 30 python .gpu/launchcost2.py 2>&1 | tee $OUT/launchcost2.txt | grep -o "^_[a-z_]* ([^)]*): triton path [0-9.]*, fast launch [0-9.]*"
timeout 25 python .gpu/hostsplit.py mv3 2>&1 | tee $OUT/hostsplit_mv3.txt | sed -n 2,6p
timeout 110 python .gpu/mve2e.py 2>&1 | tee $OUT/mve2e.txt | tail -5
