. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 420 python tools/bench_scan.py --fwd-walk --no-kernels --json $OUT/walk.json > $OUT/walk.txt 2>&1
grep -v "^fwd" $OUT/walk.txt | tail -5; grep "^fwd" $OUT/walk.txt | sed 's/  diff.*//' | awk '{$1=""; print}'
