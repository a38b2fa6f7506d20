. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 90 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py 2>&1 | tail -2
timeout 60 python .gpu/launchcost2.py 2>&1 | tee $OUT/launchcost2.txt | tail -6
timeout 60 python .gpu/hostsplit.py 2>&1 | tee $OUT/hostsplit.txt
timeout 60 python .gpu/hostsplit.py mv3 2>&1 | tee $OUT/hostsplit_mv3.txt
VSSM_FAST_LAUNCH=0 timeout 40 python .gpu/hostsplit.py 2>&1 | head -3
timeout 100 python -m pytest -q -x tests/gpu/test_selective_scan_gpu.py -k "vim_s_bidirectional or vmamba_t_stage1 or noncontiguous or options" 2>&1 | tail -2
