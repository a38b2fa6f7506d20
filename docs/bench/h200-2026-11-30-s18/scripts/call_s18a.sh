. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
mkdir -p $OFFICIAL_DIR/stub/fvcore; echo > $OFFICIAL_DIR/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OFFICIAL_DIR/stub/fvcore/nn.py
timeout 100 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -3
python .gpu/hoststep.py vmamba_tiny_s1l8 128 2>&1 | tee $OUT/hs_t128.txt
python .gpu/hoststep.py vmamba_tiny_s1l8 8 project,official 2>&1 | tee $OUT/hs_t8.txt
python .gpu/hoststep.py mambavision_t 128 2>&1 | tee $OUT/hs_mv128.txt
VSSM_FUSED_LN=0 TAG=ln0 python .gpu/hoststep.py vmamba_tiny_s1l8 8 project 2>&1 | tee -a $OUT/hs_t8.txt
timeout 200 bash .official/run.sh profile > $OUT/profile.log 2>&1; grep -A40 "### profile" $OUT/profile.log | head -60
