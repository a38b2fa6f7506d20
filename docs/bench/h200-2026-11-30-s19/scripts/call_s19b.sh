. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
( time python -m pytest -q -x tests/gpu/test_projected_gpu.py tests/gpu/test_conv1d_gpu.py 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
MATCH=mm TOPK=14 python .gpu/opshapes.py vim_small_patch16_224 2>&1 | tee $OUT/ops_vims_mm.txt
IMG=1248 BATCH=8 TOPK=12 python .gpu/opshapes.py vim_tiny_patch16_224 infer 2>&1 | tee $OUT/ops_vimti1248.txt
timeout 220 bash .official/run.sh e2e --quick > $OUT/e2e.log 2>&1; grep -A30 "### e2e" $OUT/e2e.log | head -40
