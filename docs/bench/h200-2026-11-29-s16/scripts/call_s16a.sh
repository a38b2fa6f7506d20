. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader; nproc
timeout 60 python -m pytest -q -x tests/gpu/test_fast_launch_gpu.py 2>&1 | tail -1
timeout 60 python .gpu/hostcprof.py > $OUT/hostcprof.txt 2>&1; grep -E "issue|official:" $OUT/hostcprof.txt
timeout 90 python .gpu/syncdbg.py mambavision_t vmamba_tiny_s1l8 vim_small_patch16_224 2>&1 | tail -15
timeout 200 python .gpu/mvstep.py mambavision_t vmamba_tiny_s1l8 > $OUT/mvstep.txt 2>&1; grep " ms$\|failed" $OUT/mvstep.txt
