export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
git log --oneline -1 | tee -a $OUT/gpu.txt
timeout 200 python -m pytest -q -p no:cacheprovider tests/gpu/test_projected_gpu.py tests/gpu/test_layernorm_gpu.py -k "thin or vim_ti_1248 or rms or linear_input or full_size" 2>&1 | tail -15 | tee $OUT/gputest1.txt
timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_selective_scan_gpu.py -k "fast_log or states_middle" 2>&1 | tail -8 | tee $OUT/gputest2.txt
timeout 200 python .gpu/mb30b.py model 2>&1 | tee $OUT/model.txt | grep -E "==|logits|_fwd_kernel|patch|conv|thin|layer_norm"
