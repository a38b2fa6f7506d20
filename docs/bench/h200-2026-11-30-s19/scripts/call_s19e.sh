. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
timeout 80 python .gpu/gputime_ab.py vim_tiny_patch16_224 train 2>&1 | tee $OUT/ab_vimti_train.txt
timeout 80 python .gpu/gputime_ab.py vim_small_patch16_224 train 2>&1 | tee $OUT/ab_vims_train.txt
