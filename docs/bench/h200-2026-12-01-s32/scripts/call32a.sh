export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm --format=csv,noheader
python -m pytest -q -x tests/gpu/test_projected_gpu.py -k "conv_scan or in_proj" 2>&1 | tail -5
python .gpu/kern32.py 2>&1 | tee $OUT/kern.txt
python .gpu/ab32.py vim_tiny_patch16_224:1248:8:infer vim_small_patch16_224:224:128:infer vim_tiny_patch16_224:224:128:infer 2>&1 | grep -v Warn | tee $OUT/ab.txt
