set -x
export PYTHONPATH=$PWD/.gpu/old
PROF=0 python .gpu/host31.py > $OUT/host_old.txt 2>&1
export PYTHONPATH=$PWD
python .gpu/host31.py > $OUT/host_new.txt 2>&1
python .gpu/trace31.py > $OUT/trace.txt 2>&1
grep -E "^===" $OUT/host_old.txt $OUT/host_new.txt; cat $OUT/trace.txt | grep -v Warning
