. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 60 python .gpu/topk.py 2>&1 | grep -v Warn | cut -c1-150 | head -24
timeout 200 python tools/bench_conv.py --json $OUT/conv.json > $OUT/conv.txt 2>&1; tail -70 $OUT/conv.txt | sed 's/ (.*copy speed)//'
