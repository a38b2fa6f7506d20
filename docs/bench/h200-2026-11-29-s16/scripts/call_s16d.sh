. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 90 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py 2>&1 | tail -2
timeout 60 python .gpu/launchcost2.py 2>&1 | tee $OUT/launchcost2.txt | tail -4
timeout 60 python .gpu/hostsplit.py mv3 2>&1 | tee $OUT/hostsplit_mv3.txt | head -24
timeout 150 python .gpu/mve2e.py 2>&1 | tee $OUT/mve2e.txt | tail -5
