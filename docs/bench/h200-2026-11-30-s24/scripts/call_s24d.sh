# s24 call D: MambaVision-T / -B, project (0ded604) against official, fresh processes alternating (run.sh e2e of call C
# was cut before its official MambaVision rows); Vim-Ti 1024 / 1248 batch-8 inference kernel profile.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD/stub/fvcore && xz -d < .official/official.tar.xz | tar -x -C $OD
echo > $OD/stub/fvcore/__init__.py
printf 'def _missing(*a, **k):\n    raise RuntimeError("stub")\nFlopCountAnalysis = flop_count_str = flop_count = parameter_count = _missing\n' > $OD/stub/fvcore/nn.py
for i in 1 2; do for n in mambavision_t mambavision_t_official mambavision_b mambavision_b_official; do
  timeout 60 python .gpu/mv_side.py $n 2>&1 | grep "^$n " | tee -a $OUT/mv_sides.txt
done; done
timeout 60 python .gpu/vim_hr_prof.py 2>&1 | grep -v Warn | tee $OUT/vim_hr_prof.txt
