. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 60 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py > $OUT/t_fast.txt 2>&1; tail -1 $OUT/t_fast.txt; grep -E "^E " $OUT/t_fast.txt | head -5
timeout 40 python .gpu/hostparts.py > $OUT/hostparts.txt 2>&1; grep -E "selective_scan fwd|_bwd_impl|launches|no grad" $OUT/hostparts.txt
timeout 60 python -m pytest -q -x tests/gpu/test_selective_scan_gpu.py -k "vim_s_bidirectional or vmamba_t_stage1 or noncontiguous or options or op_walks or deterministic" > $OUT/t_scan.txt 2>&1; tail -1 $OUT/t_scan.txt; grep -E "^E " $OUT/t_scan.txt | head -5
