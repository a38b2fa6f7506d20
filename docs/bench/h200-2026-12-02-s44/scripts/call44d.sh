export PYTHONPATH=$PWD
nproc
timeout 280 python .gpu/ab44.py vim_tiny_patch16_224:224:128 vim_small_patch16_224:224:128 2>&1 | grep -v -i warn | tee $OUT/ab.txt
