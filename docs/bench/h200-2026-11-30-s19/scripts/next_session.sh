# Prepared for the next GPU session (not run). From the checkout root with .official carried and this
# directory's scripts (plus stop 18's hostdiff.py) copied into .gpu/.
# 1. Launch counts and profile categories after this session's changes (the table above has none):
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 200 bash .official/run.sh profile > $OUT/profile.log 2>&1; grep -A40 "### profile" $OUT/profile.log | head -60
# 2. Where Vim-S's 161.65 ms of GPU time per training step goes now (scan backward 72.8, carry 17.1, forward 34.9):
TOPK=24 timeout 60 python .gpu/opshapes.py vim_small_patch16_224 2>&1 | tee $OUT/ops_vims.txt
# 3. On an nvidia-h200-x2 machine, in its own call: the device guard's two-GPU test
#    python -m pytest -q tests/gpu/test_fast_launch_gpu.py -k device
