# s25 call E: a second look at the host-bound rows: run.sh e2e --quick, and MambaVision-T / -B against the official in
# fresh processes (one round).
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
for n in mambavision_t mambavision_b; do for s in cl official; do
  timeout 60 python .gpu/mv_cl.py $n $s 2>&1 | grep "^$n " | tee -a $OUT/mv_sides.txt
done; done
timeout 170 bash .official/run.sh e2e --quick 2>&1 | tail -12 | tee $OUT/e2e_quick.txt
