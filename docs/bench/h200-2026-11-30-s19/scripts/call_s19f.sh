. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
( time timeout 170 python -m pytest -q -x tests/gpu/test_conv1d_gpu.py tests/gpu/test_projected_gpu.py tests/gpu/test_selective_scan_gpu.py \
   -k "mixer or (test_projected_full_size and batch_inner) or test_options or vim_s_bidirectional" 2>&1 | tail -4 ) 2>&1 | tee $OUT/gputest.txt
timeout 70 python .gpu/dest_ab.py vmamba_tiny_s1l8 train 2>&1 | tee $OUT/dest_ab_vmt.txt
