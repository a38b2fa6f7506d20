# Prepared for the next GPU session (not run). From the checkout root with .official and .gpu carried; copy
# this directory's scripts and the s15 records' scripts/stage.sh into .gpu/ first.
# MambaVision-T: the host time of a training step is level with the official one at batch 8 but 7-17 ms
# above it at batch 128 (GPU time level: 45.6 against 47.0 ms). What makes the host wait at batch 128?
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
for b in 32 64 128; do python .gpu/hoststep.py mambavision_t $b project,official 2>&1 | tee -a $OUT/hs_mv.txt; done
python .gpu/hostdiff.py mambavision_t 128 2>&1 | tee $OUT/hd_mv128.txt   # host per op at 128, both sides
