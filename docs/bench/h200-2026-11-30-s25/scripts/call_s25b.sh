# s25 call B: GPU tests (MambaVision layouts, conv op); the conv op's one-kernel backward against the old tree's two;
# Vim-S / Vim-Ti training steps per tree, fresh processes alternating.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
O=/tmp/old; rm -rf $O; mkdir -p $O; cp -r .gpu/old_tree/* $O/
( time PYTHONPATH=$PWD timeout 150 python -m pytest -q tests/gpu/test_channels_last_gpu.py tests/gpu/test_conv1d_gpu.py 2>&1 | grep -v "^  \|Warn" | tail -25 ) 2>&1 | tee $OUT/gputest.txt
for tree in old new; do P=$PWD; [ $tree = old ] && P=$O
  PYTHONPATH=$P timeout 90 python .gpu/conv_ab.py $tree 2>&1 | grep -v Warn | tee -a $OUT/conv_ab.txt; done
for i in 1 2; do for tree in old new; do for n in vim_small_patch16_224 vim_tiny_patch16_224; do
  P=$PWD; [ $tree = old ] && P=$O
  PYTHONPATH=$P timeout 60 python .gpu/train_ab.py $n $tree 2>&1 | grep "^$tree" | tee -a $OUT/train_ab.txt
done; done; done
