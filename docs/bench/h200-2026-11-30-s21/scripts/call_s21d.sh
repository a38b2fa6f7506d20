. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR
timeout 150 python .gpu/simba_ab.py 2>&1 | tee $OUT/simba_ab.txt
timeout 200 bash .official/run.sh e2e --quick > $OUT/e2e.log 2>&1; grep -A10 "### e2e" $OUT/e2e.log | head -12
