. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
for f in 0 1 0 1; do VSSM_FUSED_LN=$f TOPK=6 timeout 80 python .gpu/vmk.py vmamba_tiny_s1l8 2>&1 | tee $OUT/vmk_t_ln$f.txt | head -8; done
for f in 0 1; do VSSM_FUSED_LN=$f TOPK=4 timeout 90 python .gpu/vmk.py vmamba_small_s2l15 2>&1 | tee $OUT/vmk_s_ln$f.txt | head -6; done
VSSM_FUSED_LN=1 PROF_CPU=1 TOPK=0 timeout 100 python .gpu/vmk.py vmamba_tiny_s1l8 2>&1 | tee $OUT/vmk_t_cpu.txt | head -60
