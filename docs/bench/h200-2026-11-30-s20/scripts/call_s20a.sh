. .gpu/stage.sh
export PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
timeout 170 bash .official/run.sh profile > $OUT/profile.log 2>&1; grep -A40 "### profile" $OUT/profile.log | head -50
export OFFICIAL_DIR=/tmp/official
timeout 90 python .gpu/zcost.py 2>&1 | tee $OUT/zcost.txt
for n in mambavision_t mambavision_t_official; do timeout 60 python .gpu/mvmem.py $n 2>&1 | tee $OUT/mvmem_$n.txt | head -60; done
for n in mambavision_b mambavision_b_official; do TOPK=22 timeout 60 python .gpu/opshapes.py $n 2>&1 | tee $OUT/ops_$n.txt; done
