. .gpu/stage.sh
export PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 100 python -m pytest -q -x tests/gpu/test_layernorm_gpu.py 2>&1 | tail -3
timeout 70 python tools/bench_norm.py --sizes 401408x96,100352x192,25088x384,6272x768 --rep 100 2>&1 | tee $OUT/bench_norm.txt | tail -26
timeout 100 python tools/bench_norm.py --sizes 401408x96,100352x192,25088x384 --cases fp32,fp32-\>bf16 --rep 60 \
  --tiles 4096:2048:64,16384:8192:128,2048:1024:32,8192:4096:64:264,8192:2048:64:2112 2>&1 | tee $OUT/bench_norm_tiles.txt | grep -v "^---" | awk '{print $1,$2,$3,$4,$6,$9}' | tail -40
mkdir -p $OUT/plain $OUT/ln; OUT0=$OUT
OUT=$OUT0/plain timeout 150 bash .official/run.sh e2e --quick > $OUT0/plain.log 2>&1; grep -A9 "### e2e" $OUT0/plain.log | tail -8
OUT=$OUT0/ln VSSM_FUSED_LN=1 timeout 150 bash .official/run.sh e2e --quick > $OUT0/ln.log 2>&1; grep -A9 "### e2e" $OUT0/ln.log | tail -8
