set -x
. .gpu/stage.sh
python -m pytest -q -x tests/gpu/test_projected_gpu.py tests/gpu/test_conv1d_gpu.py 2>&1 | tail -4
python tools/bench_mixer.py --no-conv --out $OUT/mixer.json 2>&1 | grep -v Warn | tail -4
python .gpu/patch_profile.py '[("MambaVision-T", 224, 128, "train"), ("MambaVision-T infer", 224, 128, "infer"), ("SiMBA-S", 224, 128, "train"), ("Vim-S", 224, 128, "train"), ("Vim-S infer", 224, 128, "infer"), ("VMamba-T", 224, 128, "train")]'
timeout 330 bash .official/run.sh profile 2>&1 | grep -v "^\s*$" | tail -40
