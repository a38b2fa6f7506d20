export PYTHONPATH=$PWD
python .gpu/pack31.py 2>&1 | grep -v Warn | tee $OUT/pack.txt
python -m pytest -q -x tests/gpu/test_conv1d_gpu.py -k "mamba" 2>&1 | tail -2 | tee -a $OUT/pack.txt
