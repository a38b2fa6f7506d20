# s27 call A: host split of VMamba-T / Vim-Ti training, GPU kernels by name (Vim-S / VMamba-T training)
export PYTHONWARNINGS=ignore OFFICIAL_DIR=/tmp/official PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu.txt
lscpu | grep -E "Model name|^CPU\(s\)|MHz" | tee -a $OUT/gpu.txt
OD=/tmp/official; rm -rf $OD; mkdir -p $OD && xz -d < .official/official.tar.xz | tar -x -C $OD
for a in "vim_small_patch16_224 train" "vmamba_tiny_s1l8 train"; do
  set -- $a
  timeout 150 python .gpu/kprof.py $1 $2 > $OUT/kp_$1_$2.txt 2>&1; echo "$a rc=$?"; head -3 $OUT/kp_$1_$2.txt
done
for a in "vmamba_tiny_s1l8 train" "vim_tiny_patch16_224 train" "vmamba_tiny_s1l8_official train"; do
  set -- $a
  timeout 150 python .gpu/hostprof.py $1 $2 > $OUT/hp_$1_$2.txt 2>&1; echo "$a rc=$?"; grep "^A " $OUT/hp_$1_$2.txt
done
