# s23 call C: GPU tests of the host trims (dlast None, Grads, fast-launch key); host time per scan call and training
# steps, HEAD (2ade80d, .gpu/old_tree) against the working tree, fresh processes alternating
. .gpu/stage.sh
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
if [ ! -d $OFFICIAL_DIR/so ]; then rm -rf $OFFICIAL_DIR; mkdir -p $OFFICIAL_DIR; xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR; fi
O=/tmp/old; rm -rf $O; mkdir -p $O; cp -r .gpu/old_tree/* $O/; cp -r $O/kernels $O/vssm/kernels; cp -r $O/models $O/vssm/models
cp -r .official .gpu $O/
( time timeout 200 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py tests/gpu/test_projected_gpu.py \
   tests/gpu/test_selective_scan_gpu.py -k "fast or projected or options or noncontiguous or vim_s_bidirectional or vmamba_t_stage1 or (n1_walking and not 16384) or kept_states or deterministic or compile or (lengths_states and (197 or 2049))" 2>&1 | tail -5 ) 2>&1 | tee $OUT/gputest.txt
for i in 1 2; do
  for tree in old new; do
    P=/tmp/src; [ $tree = old ] && P=/tmp/old
    (cd $P && PYTHONPATH=$P timeout 60 python /tmp/src/.gpu/hostsplit.py mv3 2>&1 | grep -E "grads reset|wrapped" | sed "s/^/$tree: /") | tee -a $OUT/hostsplit_ab.txt
  done
done
for i in 1 2; do
  for tree in old new; do
    P=/tmp/src; [ $tree = old ] && P=/tmp/old
    for m in vmamba_tiny_s1l8 mambavision_t; do
      (cd $P && PYTHONPATH=$P timeout 90 python /tmp/src/.gpu/train_ab.py $m $tree 2>&1 | tail -1) | tee -a $OUT/train_ab.txt
    done
  done
done
