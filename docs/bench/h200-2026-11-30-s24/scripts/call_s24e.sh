export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD; timeout 90 python .gpu/vim_sync.py 2>&1 | grep -v Warn | tee $OUT/vim_sync.txt
