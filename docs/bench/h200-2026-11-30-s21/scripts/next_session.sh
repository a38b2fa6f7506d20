# Prepared for the next GPU session (not run). From the checkout root with .official carried and this
# directory's scripts (plus s19's stage.sh and opshapes.py) copied into .gpu/.
# 1. The commits after 1f8e256 were checked on the CPU only (review fixes: the walk only without a backward
#    and up to 256 tokens, int64 direction offsets under IDX64; the walk reading the caller's A): GPU tests first.
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
( time timeout 240 python -m pytest -q tests/gpu/test_projected_gpu.py tests/gpu/test_selective_scan_gpu.py \
    -k "walk or batch_inner_rows or full_size" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
# 2. The full e2e of the final tree (SiMBA-S's row with the N = 64 short-sequence tiles; MambaVision training
#    back on the chunk forward; Vim inference launches one fewer per layer).
timeout 360 bash .official/run.sh e2e > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -34
# 3. In a call of its own: Vim inference per batch, GPU time and launches (expect 709 launches for Vim-S now)
#    timeout 120 python .gpu/infer_prof.py
