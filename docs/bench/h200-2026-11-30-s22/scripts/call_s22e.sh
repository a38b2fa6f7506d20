# s22 call E: MambaVision-T training step timeline (host waits, GPU idle), project vs official, fresh process each
. .gpu/stage.sh
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR
timeout 240 python .gpu/mv_timeline.py mambavision_t 128 2>&1 | tee $OUT/mv_timeline.txt
