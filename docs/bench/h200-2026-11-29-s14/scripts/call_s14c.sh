. .gpu/stage.sh
timeout 540 bash .official/run.sh e2e > $OUT/e2e_run.log 2>&1
grep -A40 "### e2e" $OUT/e2e_run.log | head -45
