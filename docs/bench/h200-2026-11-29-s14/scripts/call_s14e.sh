. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 200 python -m pytest -q tests/gpu/test_compile_gpu.py -k train --durations=0 2>&1 | grep -E "passed|failed|^FAILED|^E |s call" | head -20
timeout 300 bash .official/run.sh profile > $OUT/profile_run.log 2>&1
grep -A60 "### profile" $OUT/profile_run.log | head -70
