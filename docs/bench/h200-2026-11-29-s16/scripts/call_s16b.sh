. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 60 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py 2>&1 | tail -2
timeout 60 python .gpu/hostsplit.py 2>&1 | tee $OUT/hostsplit.txt
timeout 200 python .gpu/mvstep.py mambavision_t > $OUT/mvstep.txt 2>&1; grep " ms$\|failed" $OUT/mvstep.txt
