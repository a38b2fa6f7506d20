. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
( time timeout 170 python -m pytest -q -x tests/gpu/test_selective_scan_gpu.py tests/gpu/test_conv1d_gpu.py tests/gpu/test_projected_gpu.py \
   -k "vim_s or vmamba_t_stage1 or options or token_major_odd or n1_walking_backward_forced or mixer or (test_projected_full_size and batch_inner)" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
TOPK=16 timeout 45 python .gpu/opshapes.py vim_small_patch16_224 2>&1 | tee $OUT/ops_vims.txt
timeout 380 bash .official/run.sh e2e > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -40
