"""VMamba-T / -S inference (bf16, batch 128, the harness's bench_one) under LayerNorm rules, alternating in one process."""
import os, sys
sys.path.insert(0, "/tmp/src/.official")
import torch, _env
import vssm.norm as vn
for name in ("vmamba_tiny_s1l8", "vmamba_small_s2l15"):
    m = _env.build(name).cuda()
    res = {}
    for rep in range(2):
        for tag, flag, ng in (("ln0", "0", None), ("ln1", "1", None), ("auto_nograd25", "auto", 1 << 25), ("auto_nograd22", "auto", 1 << 22)):
            os.environ["VSSM_FUSED_LN"] = flag
            if ng: vn.AUTO_MIN_NUMEL_NO_GRAD = ng
            r = _env.bench_one(m, "infer", 224, 128, 10, 30)
            res.setdefault(tag, []).append(round(r["img_per_s"]))
    print(name, res, flush=True)
    del m; torch.cuda.empty_cache()
