. .gpu/stage.sh
timeout 170 python -m pytest -q tests/gpu/test_projected_gpu.py tests/gpu/test_conv1d_gpu.py tests/gpu/test_selective_scan_gpu.py -k "projected or conv or mixer or simba or lengths_states_groups" 2>&1 | grep -E "passed|failed|^FAILED|^E " | head -12
timeout 400 bash .official/run.sh e2e 2>&1 | grep -B2 -A60 "### e2e" | head -70
