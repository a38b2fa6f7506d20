. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
( time python .gpu/mvsync.py mambavision_t 128 ) 2>&1 | tee $OUT/mvsync128.txt
MATCH=mm TOPK=20 python .gpu/opshapes.py vim_small_patch16_224 2>&1 | tee $OUT/ops_vims_mm.txt
MATCH=mm TOPK=14 python .gpu/opshapes.py vim_small_official 2>&1 | tee $OUT/ops_vimso_mm.txt
TOPK=20 python .gpu/opshapes.py vim_small_patch16_224 2>&1 | tee $OUT/ops_vims.txt
IMG=1248 BATCH=8 TOPK=25 python .gpu/opshapes.py vim_tiny_patch16_224 infer 2>&1 | tee $OUT/ops_vimti1248.txt
IMG=1248 BATCH=8 TOPK=15 python .gpu/opshapes.py vim_tiny_official infer 2>&1 | tee $OUT/ops_vimti1248o.txt
python .gpu/hostdiff.py mambavision_t 128 2>&1 | tee $OUT/hd_mv128.txt
