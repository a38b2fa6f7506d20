# s25 call A: MambaVision maps channels_last (new default) against NCHW and the official, fresh processes alternating;
# GPU kernel profile per side; the GPU test of the layouts.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
( time timeout 100 python -m pytest -q -x tests/gpu/test_channels_last_gpu.py 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
for n in mambavision_t; do for s in cl nchw official; do
  timeout 80 python .gpu/mv_cl.py $n $s prof 2>&1 | grep -v Warn | tee -a $OUT/mv_prof.txt
done; done
for i in 1 2; do for n in mambavision_t mambavision_b; do for s in cl nchw official; do
  timeout 60 python .gpu/mv_cl.py $n $s 2>&1 | grep "^$n " | tee -a $OUT/mv_sides.txt
done; done; done
