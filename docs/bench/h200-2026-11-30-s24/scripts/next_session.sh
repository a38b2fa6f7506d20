# Prepared for the next GPU session (not run). From the checkout root with .official and .gpu carried.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
# 1. GPU tests not run since stop 23's HAS_DLAST change beyond 37 of them, and the parameter cache on CUDA
#    (tests/gpu/test_param_cache_gpu.py, new in stop 24): one call of its own, the long-L float64 references are slow.
( time timeout 560 python -m pytest -q -x tests/gpu -k "not 16384" 2>&1 | tail -6 ) 2>&1 | tee $OUT/gputest.txt
# 2. (next call) the full e2e: it takes ~340 s with every side (stop 24's 330 s timeout cut the official MambaVision
#    rows): give it 420.
timeout 420 bash .official/run.sh e2e 2>&1 | tail -25 | tee $OUT/e2e_tail.txt
# 3. SS2D's inference through the parameter cache (16b4a4b: A and the autocast-cast weights) is untimed: VMamba-T /
#    -S inference, this tree against 1e5bc3e~1 (0ded604) in fresh processes alternating (cache_ab.py's rows).
# 4. Open: MambaVision-T training 0.92-0.97x (stop 24, call 4). Node count is not what binds it (stop 24, call 2);
#    the scan's backward host time (~1.3 ms per call against mamba_ssm's ~0.4) is the remaining candidate.
