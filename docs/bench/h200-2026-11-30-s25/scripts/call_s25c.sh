# s25 call C: GPU test of the channels_last maps (MambaVision, SiMBA's stem); SiMBA-S with its stem channels_last
# against NCHW, fresh processes alternating, two rounds.
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
( time timeout 200 python -m pytest -q tests/gpu/test_channels_last_gpu.py 2>&1 | grep -v "^  \|Warn" | tail -25 ) 2>&1 | tee $OUT/gputest.txt
for i in 1 2; do for s in cl nchw; do
  timeout 80 python .gpu/simba_cl.py $s 2>&1 | grep "^simba_s " | tee -a $OUT/simba_cl.txt
done; done
