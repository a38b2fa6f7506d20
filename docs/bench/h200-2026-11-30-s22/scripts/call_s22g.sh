# s22 call G: MambaVision-T training host settings A/B (project), and the official side as is
. .gpu/stage.sh
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
if [ ! -d $OFFICIAL_DIR/so ]; then rm -rf $OFFICIAL_DIR; mkdir -p $OFFICIAL_DIR; xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR; fi
timeout 150 python .gpu/mv_host_ab.py mambavision_t 2>&1 | tee $OUT/mv_host_ab.txt
timeout 60 python .gpu/mv_host_ab.py mambavision_t_official 2>&1 | head -5 | tee -a $OUT/mv_host_ab.txt
