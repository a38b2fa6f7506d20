. .gpu/stage.sh
python -m pytest -q -x tests/gpu/test_projected_gpu.py -k "384-1" 2>&1 | grep -E "assert|Error|passed|failed" | head -20
python .gpu/paths.py $OUT/paths.json mambavision_t,simba_s op,fconv 2>&1 | grep "^{" | cut -c1-300
timeout 260 python .gpu/sweep_n64.py $OUT/sweep.json 2>&1 | grep "^{" > $OUT/sweep.txt; wc -l $OUT/sweep.txt
python tools/bench_mixer.py --out $OUT/mixer2.json 2>&1 | grep "^{" | cut -c1-400
