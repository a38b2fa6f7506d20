. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 30 python .gpu/sumdir.py 2>&1 | tail -3
timeout 90 python -m pytest -q -x tests/gpu/test_conv1d_gpu.py tests/gpu/test_projected_gpu.py > $OUT/gputests.txt 2>&1; grep -E "passed|failed|^E " $OUT/gputests.txt | head -5
mkdir -p $OUT/a $OUT/b
OUT0=$OUT
OUT=$OUT0/a timeout 170 bash .official/run.sh e2e --quick > $OUT0/a.log 2>&1; grep -A9 "### e2e" $OUT0/a.log | tail -9
OUT=$OUT0/b VSSM_PAD_TOKENS=8 timeout 170 bash .official/run.sh e2e --quick > $OUT0/b.log 2>&1; grep -A9 "### e2e" $OUT0/b.log | tail -9
