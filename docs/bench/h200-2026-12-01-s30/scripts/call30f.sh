export PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,clocks.sm --format=csv,noheader
PYTHONPATH=$PWD timeout 120 python -m pytest -q -p no:cacheprovider tests/gpu/test_projected_gpu.py -k "directions or fused_residual or vim_ti_1248" 2>&1 | tail -6
PYTHONPATH=$PWD python .gpu/ab30.py new 2>&1 | grep -v "^vssm from"
PYTHONPATH=$PWD python .gpu/ab30.py nofused nofused 2>&1 | grep -v "^vssm from"
