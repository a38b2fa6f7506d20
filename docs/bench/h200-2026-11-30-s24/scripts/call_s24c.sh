# s24 call C: the parameter cache for inference (vssm/param_cache.py) against HEAD 8463d40 (old_tree), fresh processes
# alternating; then the full run.sh e2e on the checkout root (the tree as it will land if the cache holds).
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
O=/tmp/old; rm -rf $O; mkdir -p $O; cp -r .gpu/old_tree/* $O/
for i in 1; do for tree in old new; do
  P=$PWD; [ $tree = old ] && P=$O
  PYTHONPATH=$P timeout 110 python .gpu/cache_ab.py $tree 2>&1 | grep -v Warn | grep "^$tree" | tee -a $OUT/cache_ab.txt
done; done
timeout 330 bash .official/run.sh e2e 2>&1 | tail -25 | tee $OUT/e2e_tail.txt
cp -r /root/out/* $OUT/ 2>/dev/null; ls $OUT
