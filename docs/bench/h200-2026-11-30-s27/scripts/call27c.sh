export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
timeout 150 python .gpu/mm27.py 2>&1 | tee $OUT/mm27.txt
ROUNDS=8 timeout 200 python .gpu/ab27.py T vim_tiny_patch16_224 2>&1 | tee $OUT/train_ab_vimti.txt
