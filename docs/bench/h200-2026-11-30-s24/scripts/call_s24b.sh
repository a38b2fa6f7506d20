# s24 call B: MambaVision mixer's training path through projected_scan: correctness on the GPU (fp32 against CPU
# fp64 composed), A/B against HEAD (old_tree) for MambaVision-T/B training + inference in fresh processes
# alternating; GPU tests for the projected scan and the N = 1 walking backward (HAS_DLAST).
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
PYTHONPATH=$PWD timeout 120 python .gpu/mv_check.py 2>&1 | tail -2 | tee $OUT/mv_check.txt
O=/tmp/old; rm -rf $O; mkdir -p $O; cp -r .gpu/old_tree/* $O/
for i in 1 2; do for tree in old new; do for m in mambavision_t mambavision_b; do
  P=$PWD; [ $tree = old ] && P=$O
  PYTHONPATH=$P timeout 90 python .gpu/mv_ab.py $m $tree 2>&1 | grep -v Warn | tail -2 | tee -a $OUT/mv_ab.txt
done; done; done
( time PYTHONPATH=$PWD timeout 170 python -m pytest -x -q --durations=8 tests/gpu/test_projected_gpu.py \
  tests/gpu/test_selective_scan_gpu.py -k "projected or mambavision or (n1_walking and not 16384) or options" 2>&1 | tail -14 ) 2>&1 | tee $OUT/gputest.txt
