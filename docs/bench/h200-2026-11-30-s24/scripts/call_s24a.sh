# s24 call A: SS2D one-node core A/B (VMamba-T/S training, fresh processes alternating), run.sh e2e --quick from the
# checkout root (no staging), GPU scan tests (subset) after the HAS_DLAST change.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
S=docs/bench/h200-2026-11-30-s23/scripts
for i in 1 2; do for f in 0 1; do for m in vmamba_tiny_s1l8 vmamba_small_s2l15; do
  VSSM_SS2D_FUNCTION=$f timeout 90 python $S/train_ab.py $m fn$f 2>&1 | tail -1 | tee -a $OUT/ss2d_fn_ab.txt
done; done; done
( time timeout 200 bash .official/run.sh e2e --quick 2>&1 | tail -30 ) 2>&1 | tee $OUT/e2e_quick.txt
( time timeout 150 python -m pytest -x -q tests/gpu/test_selective_scan_gpu.py -k "not 16384 and not 6085" 2>&1 | tail -6 ) 2>&1 | tee $OUT/gputest.txt
