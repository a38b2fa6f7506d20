# Prepared for the next GPU session (not run): from the checkout root with .official and .gpu carried (copy
# this directory's scripts and the s15 records' scripts/stage.sh into .gpu/ first).
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 90 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -2
timeout 60 python .gpu/lndiag.py 0,3 2>&1 | tee $OUT/lndiag.txt                     # kernel and host time per call
for f in 0 1 0 1; do VSSM_FUSED_LN=$f TOPK=6 timeout 80 python .gpu/vmk.py vmamba_tiny_s1l8 2>&1 | head -8; done
VSSM_FUSED_LN=1 PROF_CPU=1 TOPK=0 timeout 100 python .gpu/vmk.py vmamba_tiny_s1l8 2>&1 | head -60   # host per node
