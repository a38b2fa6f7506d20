. .gpu/stage.sh
export PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
echo "== walk test"; timeout 150 python -m pytest -q -x tests/gpu/test_selective_scan_gpu.py -k walking 2>&1 | grep -E "passed|failed|^FAILED|^E " | head -12
echo "== bench walk"; timeout 150 python tools/bench_scan.py --fwd-walk --no-kernels 2>&1 | tail -40
echo "== e2e quick walk"; VSSM_SCAN_FWD=walk timeout 240 bash .official/run.sh e2e --quick 2>&1 | grep -A40 "### e2e" | head -45
