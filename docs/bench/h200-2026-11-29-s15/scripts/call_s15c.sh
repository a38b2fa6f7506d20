. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 60 python .gpu/mvseq.py > $OUT/mv_fresh.txt 2>&1; cat $OUT/mv_fresh.txt | tail -4
timeout 200 python .gpu/mvseq.py vim_tiny_patch16_224,vim_small_patch16_224,vmamba_tiny_s1l8,vmamba_small_s2l15,simba_s > $OUT/mv_seq.txt 2>&1; tail -14 $OUT/mv_seq.txt
for n in mambavision_t mambavision_t_official mambavision_b mambavision_b_official; do timeout 60 python .gpu/mvprof.py $n > $OUT/prof_$n.txt 2>&1; grep "per step" $OUT/prof_$n.txt; done
