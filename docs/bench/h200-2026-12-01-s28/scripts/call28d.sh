export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
timeout 100 python .gpu/walk28.py 2>&1 | tee $OUT/walk28.txt
timeout 120 python -m pytest -q -p no:cacheprovider tests/gpu/test_projected_gpu.py -k "walks or mambavision" tests/gpu/test_selective_scan_gpu.py -k walk 2>&1 | tail -3 | tee $OUT/gputest.txt
ROUNDS=6 timeout 150 python .gpu/ab28.py train mambavision_t mambavision_b 2>&1 | tee $OUT/ab_train.txt
ROUNDS=4 timeout 60 python .gpu/ab28.py infer mambavision_t 2>&1 | tee $OUT/ab_infer.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
for r in 1 2; do
  for n in mambavision_t mambavision_t_official; do
    PYTHONPATH=$PWD:$OD/stub timeout 90 python .gpu/side_train.py $n 2>&1 | tail -1 | tee -a $OUT/mv_sides.txt
  done
done
for n in mambavision_t mambavision_t_official; do
  ONLY_A=1 PYTHONPATH=$PWD:$OD/stub timeout 90 python .gpu/hostprof.py $n train 2>&1 | grep "^A" | tee -a $OUT/mv_host.txt
done
