NEW=$PWD; OLD=$PWD/.gpu/old
for rep in 1 2; do
for spec in vim_tiny_patch16_224:224:128:infer vim_small_patch16_224:224:128:infer vim_tiny_patch16_224:1024:8:infer; do
  PYTHONPATH=$OLD python .gpu/ab31.py old $spec 2>/dev/null
  PYTHONPATH=$NEW python .gpu/ab31.py new $spec 2>/dev/null
done; done | tee $OUT/ab.txt
bash .official/run.sh e2e --quick > $OUT/run_stdout.txt 2>&1; cat $OUT/e2e.md | head -8
