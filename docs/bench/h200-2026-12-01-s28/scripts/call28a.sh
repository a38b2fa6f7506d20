# For the next session's device time (stop 27's open question, issue 16): MambaVision-T's backward host time per node
# type on both sides, each in a fresh process; run from the checkout root with .official and .gpu carried and this
# directory's node_host.py copied to .gpu/.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
for n in mambavision_t mambavision_t_official; do
  PYTHONPATH=$PWD:$OD/stub timeout 150 python .gpu/node_host.py $n > $OUT/nodes_$n.txt 2>&1; head -32 $OUT/nodes_$n.txt
done
nvidia-smi --query-gpu=name,clocks.sm --format=csv; lscpu | grep -i "model name"
