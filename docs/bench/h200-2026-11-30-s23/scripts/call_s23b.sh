# s23 call B: VMamba-T high-res inference two-pass vs serial carry; MambaVision-T inference kernels, project vs official
. .gpu/stage.sh
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
if [ ! -d $OFFICIAL_DIR/so ]; then rm -rf $OFFICIAL_DIR; mkdir -p $OFFICIAL_DIR; xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR; fi
timeout 150 python .gpu/vmamba_hr.py 2>&1 | tee $OUT/vmamba_hr.txt
timeout 150 python .gpu/mv_infer_prof.py 2>&1 | tee $OUT/mv_infer_prof.txt
timeout 100 python .gpu/launchpath.py mambavision_t vmamba_tiny_s1l8 2>&1 | tee $OUT/launchpath.txt
timeout 60 python .gpu/hostsplit.py mv3 2>&1 | tee $OUT/hostsplit.txt
