. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 120 python .gpu/hostprof.py > $OUT/hostprof.txt 2>&1; grep "ms/iter" $OUT/hostprof.txt; tail -3 $OUT/hostprof.txt
