export PYTHONPATH=$PWD; bash .official/run.sh e2e --quick > $OUT/run_stdout.txt 2>&1; head -8 $OUT/e2e.md; tail -2 $OUT/run_stdout.txt
