# s23 call A: the carry gate's GPU test; VMamba-T / MambaVision-T training timelines (project vs official, fresh
# processes); VMamba-T high-res inference, two-pass vs serial carry
. .gpu/stage.sh
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official
if [ ! -d $OFFICIAL_DIR/so ]; then rm -rf $OFFICIAL_DIR; mkdir -p $OFFICIAL_DIR; xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR; fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt; nproc; lscpu | grep "Model name" | tee -a $OUT/gpu.txt
( time timeout 150 python -m pytest -q tests/gpu/test_selective_scan_gpu.py -k "segments_carry" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 170 python .gpu/timeline.py vmamba_tiny_s1l8 128 2>&1 | tee $OUT/timeline_vmamba_t.txt
timeout 120 python .gpu/timeline.py mambavision_t 128 2>&1 | tee $OUT/timeline_mv_t.txt
timeout 120 python .gpu/vmamba_hr.py 2>&1 | tee $OUT/vmamba_hr.txt
