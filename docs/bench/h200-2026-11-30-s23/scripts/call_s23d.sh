# s23 call D: Vim-Ti inference, HEAD~ (2ade80d, .gpu/old_tree) against the working tree, fresh processes alternating
. .gpu/stage.sh
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
O=/tmp/old; rm -rf $O; mkdir -p $O; cp -r .gpu/old_tree/* $O/; cp -r $O/kernels $O/vssm/kernels; cp -r $O/models $O/vssm/models
for i in 1 2; do for tree in old new; do
  P=/tmp/src; [ $tree = old ] && P=/tmp/old
  (cd $P && PYTHONPATH=$P timeout 60 python /tmp/src/.gpu/infer_ab.py $tree 2>&1 | tail -3) | tee -a $OUT/infer_ab.txt
done; done
