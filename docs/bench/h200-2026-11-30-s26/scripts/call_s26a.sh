# s26 call A: where the host time of a step goes (project vs official), MambaVision-T / VMamba-T / Vim-S
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)|MHz" | tee -a $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
for a in "mambavision_t train" "mambavision_t_official train" "vmamba_tiny_s1l8 train" "vmamba_tiny_s1l8_official train" "mambavision_t infer" "mambavision_t_official infer" "vim_small_patch16_224 train" "vim_small_official train"; do
  set -- $a
  timeout 120 python .gpu/hostprof.py $1 $2 > $OUT/hp_$1_$2.txt 2>&1; echo "$a rc=$?"; grep "^A " $OUT/hp_$1_$2.txt
done
