. .gpu/stage.sh
export PYTHONWARNINGS=ignore
export OFFICIAL_DIR=/tmp/official; mkdir -p $OFFICIAL_DIR && xz -d < .official/official.tar.xz | tar -x -C $OFFICIAL_DIR
timeout 150 python .gpu/vimti224.py 2>&1 | tee $OUT/vimti224.txt
TOPK=14 timeout 60 python .gpu/opshapes.py vim_tiny_patch16_224 infer 2>&1 | tee $OUT/ops_vimti_infer.txt
