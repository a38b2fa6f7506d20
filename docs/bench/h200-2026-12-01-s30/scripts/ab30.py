"""Stop 30 call 5: the e2e protocol (bench_one: 10 warm-up + 30 timed steps, median) plus profiler GPU time per
step, for the models whose e2e moved, on this tree or the previous one (PYTHONPATH), with toggles from argv."""
import dataclasses, os, statistics, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm  # noqa
import _env
from torch.profiler import profile, ProfilerActivity
tag = sys.argv[1]
flags = set(sys.argv[2:])
print("vssm from", vssm.__file__, flags)
if "nofastlog" in flags:
    from vssm.kernels.selective_scan import triton_fwd as tf
    t = tf.triton_forward.__kwdefaults__["tiles"]
    tf.triton_forward.__kwdefaults__["tiles"] = dataclasses.replace(t, fwd_fast_log=False)
if "nofused" in flags:
    import vssm.mamba as vm
    vm.FUSED_RESIDUAL = False
if "nothin" in flags:
    from vssm.kernels.selective_scan import triton_thin as tt
    tt.MAX_R = 0
if "oldnorm" in flags:
    import vssm.norm as vn
    from timm.layers import RmsNorm
    vn.LinearInputRmsNorm.forward = lambda self, x: RmsNorm.forward(self, x).to(self._out_dtype(x))
if "oldpatch" in flags:
    import vssm.models.vim as mv
    mv.VimPatchEmbed.forward = lambda self, x: self.proj(x).permute(0, 2, 3, 1)
runs = [("vim_tiny_patch16_224", 1248, 8), ("vim_tiny_patch16_224", 224, 128), ("vim_small_patch16_224", 224, 128)]
for name, px, bs in runs:
    model = (timm.create_model(name, img_size=px) if px != 224 else timm.create_model(name)).cuda()
    r = _env.bench_one(model, "infer", px, bs, 10, 30)
    step = _env.make_step(model, "infer", bs, px)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        step()
    host = (time.perf_counter() - t0) / 10 * 1e3
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    gpu = sum(e.device_time_total for e in ev) / 3e3
    ev.sort(key=lambda e: -e.device_time_total)
    top = "; ".join(f"{e.key[:28]} {e.device_time_total/3e3:.2f}" for e in ev[:4])
    print(f"{tag:10s} {name:22s} {px:5d} bench {r['ms_per_batch']:7.2f} ms  host-enqueue {host:7.2f}  GPU {gpu:7.2f} | {top}",
          flush=True)
    del model, step
