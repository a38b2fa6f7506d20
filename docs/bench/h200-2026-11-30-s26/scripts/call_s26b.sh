# s26 call B: conv backward (tap tiles) and the direct launch on Triton 3.6 (GPU tests; A/B against 084dcb0)
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
rm -rf /tmp/old && cp -r .gpu/old_tree /tmp/old && cp -r tools /tmp/old/ && cp -r .official /tmp/old/
( PYTHONPATH=$PWD timeout 200 python -m pytest -q tests/gpu/test_fast_launch_gpu.py tests/gpu/test_conv1d_gpu.py 2>&1 | tail -4 ) | tee $OUT/gputest.txt
( cd /tmp/old && PYTHONPATH=/tmp/old timeout 100 python $OLDPWD/.gpu/conv_ab2.py old ) 2>&1 | grep -v Warn | tee $OUT/conv_ab.txt
PYTHONPATH=$PWD timeout 150 python .gpu/conv_ab2.py new 8 32 2>&1 | grep -v Warn | tee -a $OUT/conv_ab.txt
for i in 1 2; do for n in vim_small_patch16_224 mambavision_t; do
  ( cd /tmp/old && TAG=old ONLY_A=1 PYTHONPATH=/tmp/old timeout 100 python $OLDPWD/.gpu/hostprof.py $n train ) 2>&1 | grep "^A " | tee -a $OUT/host_ab.txt
  TAG=new ONLY_A=1 PYTHONPATH=$PWD timeout 100 python .gpu/hostprof.py $n train 2>&1 | grep "^A " | tee -a $OUT/host_ab.txt
done; done
