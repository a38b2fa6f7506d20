export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
timeout 300 python .gpu/abgate29.py 2>&1 | tee $OUT/abgate.txt
