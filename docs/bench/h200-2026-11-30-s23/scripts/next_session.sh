# Prepared for the next GPU session (not run). From the checkout root with .official carried (and .gpu for 2-3).
# 1. run.sh straight on the checkout (0ac2ca2 made `import vssm` work from a source checkout; stop 23's call 5
#    failed there), with the GPU tests that stop 23's call 4 did not reach (cut by its 200 s timeout):
export PYTHONWARNINGS=ignore
( time timeout 240 python -m pytest -q tests/gpu/test_selective_scan_gpu.py -k "not 16384 and not 6085" 2>&1 | tail -4 ) 2>&1 \
    | tee $OUT/gputest.txt
timeout 330 bash .official/run.sh e2e --quick 2>&1 | grep -A12 "### e2e" | tee $OUT/e2e_quick.txt
# 2. VMamba-T training is bound by the host (GPU busy 72.6 ms of a ~85-98 ms step; stage 3's forward issues 273
#    launches for 8 blocks): time a one-Function SS2D core (x_proj as one mm over the four directions, delta one
#    bmm, A = -exp(A_logs) and the B / C / delta views inside, no autograd node per view) against the current
#    core, VMamba-T training in fresh processes alternating (docs/bench/h200-2026-11-30-s23/scripts/train_ab.py).
# 3. MambaVision-T: the scan's backward nodes take 3x mamba_ssm's host time (7.97 against 2.45 ms per step under
#    the profiler): ~55 torch calls per fwd + bwd are left (NOTES.md, "Host time of a scan call, by launch").
