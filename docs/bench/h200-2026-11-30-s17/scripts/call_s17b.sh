. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 120 python .gpu/lndiag.py 2>&1 | tee $OUT/lndiag.txt
timeout 90 python .gpu/vmk.py vmamba_tiny_s1l8 2>&1 | tee $OUT/vmk_head.txt | head -40
VSSM_FUSED_LN=1 timeout 90 python .gpu/vmk.py vmamba_tiny_s1l8 2>&1 | tee $OUT/vmk_ln.txt | head -40
cp -r .gpu/old /tmp/old; (cd /tmp/old && PYTHONPATH=/tmp/old timeout 90 python /tmp/src/.gpu/vmk.py vmamba_tiny_s1l8 2>&1 | tee $OUT/vmk_old.txt | head -40)
timeout 90 python .gpu/vmk.py vmamba_tiny_s1l8_official 2>&1 | tee $OUT/vmk_off.txt | head -40
