. .gpu/stage.sh
cp .gpu/projected_old.py vssm/kernels/selective_scan/projected_old.py
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
timeout 60 python .gpu/gate_bench.py 2>&1 | tee $OUT/gate_bench.txt
for v in new old; do timeout 45 python .gpu/gate_mem.py vim_small_patch16_224 infer $v 2>&1 | tee $OUT/mem_vims_$v.txt | head -14; done
timeout 80 python .gpu/gate_ab.py vim_small_patch16_224 infer 2>&1 | tee $OUT/ab_vims_infer.txt
timeout 90 python .gpu/gate_ab.py vim_small_patch16_224 train 2>&1 | tee $OUT/ab_vims_train.txt
timeout 100 python .gpu/gate_ab.py simba_s train 2>&1 | tee $OUT/ab_simba_train.txt
