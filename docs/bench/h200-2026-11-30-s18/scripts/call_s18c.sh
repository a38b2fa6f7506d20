. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
mkdir -p $OFFICIAL_DIR/stub/fvcore; echo > $OFFICIAL_DIR/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OFFICIAL_DIR/stub/fvcore/nn.py
timeout 150 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -3
TOPK=22 timeout 90 python .gpu/vmk.py mambavision_t 2>&1 | tee $OUT/vmk_mv.txt
TOPK=22 timeout 90 python .gpu/vmk.py mambavision_t_official 2>&1 | tee $OUT/vmk_mvo.txt
TAG=auto25 python .gpu/hoststep.py vmamba_tiny_s1l8 128 project,official,project 2>&1 | tee -a $OUT/hs.txt
