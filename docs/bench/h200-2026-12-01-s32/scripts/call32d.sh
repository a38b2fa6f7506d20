export PYTHONPATH=$PWD
python -m pytest -q tests/gpu/test_conv1d_gpu.py -k mamba 2>&1 | tail -2
bash .official/run.sh e2e --quick > $OUT/run_stdout.txt 2>&1; cat $OUT/e2e.md | head -12
python -m pytest -q tests/gpu/test_projected_gpu.py -k "conv_scan" 2>&1 | tail -2
