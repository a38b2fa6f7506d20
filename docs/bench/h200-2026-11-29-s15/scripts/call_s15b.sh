. .gpu/stage.sh
export PYTHONWARNINGS=ignore
timeout 60 python .gpu/scanprof.py > $OUT/scanprof.txt 2>&1; head -3 $OUT/scanprof.txt | cut -c1-200
timeout 60 python .gpu/scanprof.py tm > $OUT/scanprof_tm.txt 2>&1; head -1 $OUT/scanprof_tm.txt
mkdir -p $OUT/p1 $OUT/p8
timeout 150 python .official/profile_models.py --out $OUT/p1 --side-worker project --rows $OUT/p1/rows.json > $OUT/p1.log 2>&1; grep "\[project\]" $OUT/p1.log | cut -c1-400
VSSM_PAD_TOKENS=8 timeout 150 python .official/profile_models.py --out $OUT/p8 --side-worker project --rows $OUT/p8/rows.json > $OUT/p8.log 2>&1; grep "\[project\]" $OUT/p8.log | cut -c1-400
