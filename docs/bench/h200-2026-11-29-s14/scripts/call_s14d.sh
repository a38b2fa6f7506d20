. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 150 python .gpu/mvpeak.py 2>&1 | grep -v Warning | tail -12
timeout 330 python -m pytest -q tests/gpu/test_compile_gpu.py --durations=0 2>&1 | grep -E "passed|failed|^FAILED|^E |s call" | head -20
