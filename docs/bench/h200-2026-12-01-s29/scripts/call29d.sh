export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
timeout 200 python .gpu/prof29.py vim_tiny_patch16_224 224 128 train 2>&1 | tee $OUT/prof_ti.txt
timeout 150 python .gpu/prof29.py vim_tiny_patch16_224 1248 8 infer 2>&1 | tee $OUT/prof_1248.txt
