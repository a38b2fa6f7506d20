export PYTHONWARNINGS=ignore PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)" | tee -a $OUT/gpu.txt
git log --oneline -1 | tee -a $OUT/gpu.txt; git status --short | head -20 | tee -a $OUT/gpu.txt
timeout 560 bash .official/run.sh e2e profile > $OUT/run_log.txt 2>&1
ls $OUT
tail -80 $OUT/run_log.txt
