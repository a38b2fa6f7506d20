# s22 call F: official MambaVision-T timeline (project's in call E); Vim-Ti high-res batch 1-2 inference, carry A/B
. .gpu/stage.sh
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
if [ ! -d $OFFICIAL_DIR/so ]; then rm -rf $OFFICIAL_DIR; mkdir -p $OFFICIAL_DIR; xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR; fi
cp .gpu/triton_carry_old.py vssm/kernels/selective_scan/
timeout 100 python .gpu/vim_b1.py project 2>&1 | tee $OUT/vim_b1.txt
timeout 60 python .gpu/vim_b1.py official 2>&1 | tee -a $OUT/vim_b1.txt
sed -i 's/for side in ("project", "official")/for side in ("official",)/' .gpu/mv_timeline.py
timeout 120 python .gpu/mv_timeline.py mambavision_t 128 2>&1 | tee $OUT/mv_timeline_official.txt
