NEW=$PWD; OLD=$PWD/.gpu/old
for rep in 1 2; do
for spec in vim_small_patch16_224:224:128:train vmamba_tiny_s1l8:224:128:train vim_tiny_patch16_224:1248:8:infer vim_small_patch16_224:224:16:train; do
  PYTHONPATH=$OLD python .gpu/ab31.py old $spec 2>/dev/null
  PYTHONPATH=$NEW python .gpu/ab31.py new $spec 2>/dev/null
done; done | tee $OUT/ab.txt
PYTHONPATH=$NEW python -m pytest -q -x tests/gpu/test_conv1d_gpu.py -k "mamba" tests/gpu/test_projected_gpu.py 2>&1 | tail -3
PYTHONPATH=$NEW python .gpu/trace31.py vim_small_patch16_224:224:128:train 2>&1 | grep -v Warn | grep "phase:fwd\|phase:bwd\|step#" > $OUT/trace.txt; cat $OUT/trace.txt
