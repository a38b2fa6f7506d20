export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
for w in scan scan_official mambavision_t; do
  PYTHONPATH=$PWD:$OD/stub timeout 200 python .gpu/pyprof_dev.py $w > $OUT/pyprof_$w.txt 2>&1; head -3 $OUT/pyprof_$w.txt | grep host
done
