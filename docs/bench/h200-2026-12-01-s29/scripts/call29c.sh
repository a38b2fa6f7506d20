export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
timeout 150 python .gpu/smid29.py 2>&1 | tee $OUT/smid.txt
timeout 300 python .gpu/ab29.py 2>&1 | tee $OUT/ab.txt
