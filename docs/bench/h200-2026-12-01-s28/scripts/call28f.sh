# s28 call F: MambaVision-T / -B training, fresh processes per side alternating, three rounds (harness protocol)
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
lscpu | grep -E "Model name|^CPU\(s\)" | tee $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
for r in 1 2 3; do
  for n in mambavision_t mambavision_t_official; do
    PYTHONPATH=$PWD:$OD/stub timeout 80 python .gpu/side_train.py $n 2>&1 | tail -1 | tee -a $OUT/mv_sides.txt
  done
done
