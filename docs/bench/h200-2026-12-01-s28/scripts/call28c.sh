export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
git log --oneline | head -1
timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_projected_gpu.py -k mambavision tests/gpu/test_conv1d_gpu.py -k mambavision 2>&1 | tail -3 | tee $OUT/gputest.txt
ROUNDS=6 AB=projected timeout 200 python .gpu/ab28.py train mambavision_t mambavision_b 2>&1 | tee $OUT/ab_train.txt
ROUNDS=4 AB=projected timeout 100 python .gpu/ab28.py infer mambavision_t mambavision_b 2>&1 | tee $OUT/ab_infer.txt
