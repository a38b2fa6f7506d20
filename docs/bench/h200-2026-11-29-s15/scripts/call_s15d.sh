. .gpu/stage.sh
export PYTHONWARNINGS=ignore
mkdir -p /tmp/official && xz -d < .official/official.tar.xz | tar -x -C /tmp/official; export OFFICIAL_DIR=/tmp/official
timeout 100 python .gpu/mvseq2.py mambavision_t deit_small_patch16_224 2>&1 | grep -v Warn | tail -8
timeout 60 python .gpu/mvseq2.py mambavision_t_official 2>&1 | tail -3
