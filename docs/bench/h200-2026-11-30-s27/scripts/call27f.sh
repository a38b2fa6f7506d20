# s27 call F: MambaVision-T training, fresh processes per side (two rounds), phase host times, and after SiMBA-S in one process
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)|MHz" | tee -a $OUT/gpu.txt
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
timeout 150 python .gpu/seq_mv.py simba_s mambavision_t mambavision_t 2>&1 | tail -3 | tee $OUT/mv_seq.txt
