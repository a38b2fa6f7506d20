# Prepared for the next GPU session (not run). From the checkout root with .official and .gpu carried; copy
# this directory's scripts and the s15 records' scripts/stage.sh into .gpu/ first.
# MambaVision-T: the host time of a training step is level with the official one at batch 8 but 7-17 ms
# above it at batch 128 (GPU time level: 45.6 against 47.0 ms). What makes the host wait at batch 128?
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
for b in 32 64 128; do python .gpu/hoststep.py mambavision_t $b project,official 2>&1 | tee -a $OUT/hs_mv.txt; done
python .gpu/hostdiff.py mambavision_t 128 2>&1 | tee $OUT/hd_mv128.txt   # host per op at 128, both sides
# Vim-S training: GEMM 23.0 ms per step against the official 12.0 (run.sh profile, call 1; "other" 15.1 against
# 0.25 is mostly the project's Triton depthwise conv, which profile_models.py files under "other": its conv
# row reads 0.45 against the official 31.5); Vim-Ti at 1248: elementwise 6.1 against 1.2. Which kernels:
TOPK=30 python .gpu/vmk.py vim_small_patch16_224 2>&1 | tee $OUT/vmk_vims.txt
TOPK=30 python .gpu/vmk.py vim_small_official 2>&1 | tee $OUT/vmk_vimso.txt
IMG=1248 BATCH=8 TOPK=25 python .gpu/vmk.py vim_tiny_patch16_224 infer 2>&1 | tee $OUT/vmk_vimti1248.txt
