. .gpu/stage.sh
cp .gpu/projected_old.py vssm/kernels/selective_scan/projected_old.py
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
( time timeout 150 python -m pytest -q -x tests/gpu/test_projected_gpu.py 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 80 python .gpu/gate_ab.py vim_small_patch16_224 train 2>&1 | tee $OUT/ab_vims_train.txt
timeout 50 python .gpu/gate_ab.py vim_small_patch16_224 infer 2>&1 | tee $OUT/ab_vims_infer.txt
timeout 80 python .gpu/gate_ab.py simba_s train 2>&1 | tee $OUT/ab_simba_train.txt
timeout 40 python .gpu/mvmem.py mambavision_t 2>&1 | head -30 | tee $OUT/mvmem_first.txt
timeout 40 python .gpu/mvmem.py mambavision_t_official 2>&1 | head -12 | tee $OUT/mvmem_first_off.txt
timeout 170 bash .official/run.sh e2e --quick > $OUT/e2e.log 2>&1; grep -A20 "### e2e" $OUT/e2e.log | head -24
