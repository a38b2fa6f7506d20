# Prepared for the next GPU session (not run). From the checkout root with .official carried and .gpu holding
# this directory's scripts plus s19's stage.sh.
# 1. The final carry gate on the GPU (this session's last test version never ran there: no device time left):
#    Vim-Ti 1248 batch 1 through the serial carry, (2, 192, 12544, N = 1) through the two passes.
. .gpu/stage.sh
export PYTHONWARNINGS=ignore
( time timeout 120 python -m pytest -q tests/gpu/test_selective_scan_gpu.py -k "segments_carry" 2>&1 | tail -4 ) 2>&1 \
    | tee $OUT/gputest.txt
# 2. The two-pass carry end to end where it is taken: VMamba-T at high resolution, batch 1-2 (stage 1: 784+
#    chunks), two passes against the serial carry, alternating in one process (the harness's bench_one):
#    set Tiles.carry_two_pass_min_chunks = 1 << 30 through triton_carry.run_carry's tiles for the serial side.
# 3. MambaVision-T's host time per step in the project's process, split by module and by the scan op's pieces
#    (torch.profiler showed the same autograd nodes at 1.5-2x the official's host time: raw/call6, raw/call7).
