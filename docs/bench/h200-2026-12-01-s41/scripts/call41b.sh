export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
git log --oneline -1 2>/dev/null || true
bash .official/run.sh e2e profile > $OUT/run_stdout.txt 2>&1; tail -70 $OUT/run_stdout.txt
