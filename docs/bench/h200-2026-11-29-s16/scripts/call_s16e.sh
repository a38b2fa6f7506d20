. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 45 python .gpu/launchcost2.py 2>&1 | tee $OUT/launchcost2.txt | tail -4
timeout 500 bash .official/run.sh e2e > $OUT/e2e_run.log 2>&1
grep -A40 "### e2e" $OUT/e2e_run.log | head -45; tail -2 $OUT/e2e_run.log
