export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)" | tee -a $OUT/gpu.txt
timeout 450 bash .official/run.sh e2e > $OUT/run_log.txt 2>&1
ls $OUT; grep -A30 "### e2e" $OUT/run_log.txt | head -30
