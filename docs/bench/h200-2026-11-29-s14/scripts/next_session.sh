# Prepared for the next GPU session (did not run here): from the checkout root, with .official and .gpu carried
# (copy this file, sumdir.py and stage.sh into .gpu/ first).
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 30 python .gpu/sumdir.py 2>&1 | tail -3                      # the direction sum at Vim-Ti 1248
timeout 60 python -m pytest -q -x tests/gpu/test_conv1d_gpu.py tests/gpu/test_projected_gpu.py 2>&1 | grep -E "passed|failed|^E " | head -5
timeout 170 bash .official/run.sh e2e --quick 2>&1 | grep -A9 "### e2e"                      # the code as it is
VSSM_PAD_TOKENS=8 timeout 170 bash .official/run.sh e2e --quick 2>&1 | grep -A9 "### e2e"    # padded rows
