# Prepared for the next GPU session (not run). From the checkout root with .official carried (and .gpu for 2-3).
# 1. run.sh straight on the checkout (0ac2ca2 made `import vssm` work from a source checkout; stop 23's call 5
#    failed there), with the GPU tests that stop 23's call 4 did not reach (cut by its 200 s timeout):
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD  # the scripts below import vssm from here
( time timeout 240 python -m pytest -q tests/gpu/test_selective_scan_gpu.py -k "not 16384 and not 6085" 2>&1 | tail -4 ) 2>&1 \
    | tee $OUT/gputest.txt
timeout 330 bash .official/run.sh e2e --quick 2>&1 | grep -A12 "### e2e" | tee $OUT/e2e_quick.txt
# 2. VMamba-T training is bound by the host (GPU busy 72.6 ms of a ~85-98 ms step; stage 3's forward issues 273
#    launches for 8 blocks). SS2D's core as one autograd node (`vssm.ss2d._Core`, 37 graph nodes per SS2D instead
#    of 63; equal results on the CPU and under the interpreter) is in the tree but off until timed: VMamba-T /
#    VMamba-S training and inference with VSSM_SS2D_FUNCTION=1 against 0, fresh processes alternating; make it
#    the default (SS2D.function_core None -> the env default) if it wins:
for i in 1 2; do for f in 0 1; do for m in vmamba_tiny_s1l8 vmamba_small_s2l15; do
  VSSM_SS2D_FUNCTION=$f timeout 90 python docs/bench/h200-2026-11-30-s23/scripts/train_ab.py $m fn$f 2>&1 | tail -1 \
    | tee -a $OUT/ss2d_fn_ab.txt
done; done; done
# 3. MambaVision-T: the scan's backward nodes take 3x mamba_ssm's host time (7.97 against 2.45 ms per step under
#    the profiler): ~55 torch calls per fwd + bwd are left (NOTES.md, "Host time of a scan call, by launch").
