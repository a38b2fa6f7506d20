export PYTHONPATH=$PWD
python -m pytest -q -x tests/gpu/test_projected_gpu.py -k "in_proj" 2>&1 | grep -E "assert|Error|passed|failed" | head -20
python .gpu/kern32b.py 2>&1 | tee $OUT/kern.txt
