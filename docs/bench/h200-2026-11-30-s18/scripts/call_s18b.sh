. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
mkdir -p $OFFICIAL_DIR/stub/fvcore; echo > $OFFICIAL_DIR/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OFFICIAL_DIR/stub/fvcore/nn.py
[ -n "$LNTEST" ] && timeout 120 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -3
H=.gpu/hoststep.py
TAG=auto python $H vmamba_tiny_s1l8 128 project,official 2>&1 | tee -a $OUT/hs.txt
TAG=ln1 VSSM_FUSED_LN=1 python $H vmamba_tiny_s1l8 128 project 2>&1 | tee -a $OUT/hs.txt
TAG=ln0 VSSM_FUSED_LN=0 python $H vmamba_tiny_s1l8 128 project 2>&1 | tee -a $OUT/hs.txt
TAG=m25 HS_MIN=33554432 python $H vmamba_tiny_s1l8 128 project 2>&1 | tee -a $OUT/hs.txt
TAG=auto python $H vmamba_tiny_s1l8 128 project,official 2>&1 | tee -a $OUT/hs.txt
TAG=auto python $H vmamba_small_s2l15 128 project,official 2>&1 | tee -a $OUT/hs.txt
TAG=ln1 VSSM_FUSED_LN=1 python $H vmamba_small_s2l15 128 project 2>&1 | tee -a $OUT/hs.txt
python .gpu/hostdiff.py mambavision_t 8 2>&1 | tee $OUT/hd_mv.txt
python .gpu/hostdiff.py vmamba_tiny_s1l8 8 2>&1 | tee $OUT/hd_t.txt
