# Prepared for the next GPU session (did not run here): from the checkout root, with .official and .gpu carried
# (copy this file, launchcost.py, hostparts.py, mve2e.py and stage.sh into .gpu/ first).
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 60 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py 2>&1 | tail -1       # after the review fixes
timeout 60 python .gpu/launchcost.py 2>&1 | tail -5                                          # where a launch's host time goes
timeout 40 python .gpu/hostparts.py 2>&1 | grep -E "fwd\+bwd|no grad"
VSSM_FAST_LAUNCH=0 timeout 40 python .gpu/hostparts.py 2>&1 | grep -E "fwd\+bwd"          # same call, fast launch off
timeout 100 python .gpu/mve2e.py 2>&1 | tail -5
# then, in a call of its own: bash .official/run.sh e2e   (the full table for the closing note)
