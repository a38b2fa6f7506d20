export PYTHONPATH=$PWD
python -m pytest -q tests/gpu/test_projected_gpu.py -k "conv_scan or in_proj" 2>&1 | tail -2
CFGS=old,new,new-tm python .gpu/ab32.py vim_tiny_patch16_224:1248:8:infer 2>&1 | grep -v Warn | tee $OUT/ab.txt
CFGS=old,new python .gpu/ab32.py vim_small_patch16_224:224:128:infer vim_tiny_patch16_224:1024:8:infer 2>&1 | grep -v Warn | tee -a $OUT/ab.txt
