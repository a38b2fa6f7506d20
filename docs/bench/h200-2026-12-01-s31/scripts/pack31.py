"""Stop 31: the pack kernel on the GPU: values against the stacking (Vim-S's mixer parameters), then Vim-S training
steps with the kernel and with the five-launch torch form, alternating in one process (wall and host per step)."""
import os, statistics, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm, vssm.mamba as vm  # noqa
import _env
from vssm.kernels.selective_scan import triton_pack as tp
model = timm.create_model("vim_small_patch16_224").cuda()
m = model.layers[0].mixer
p = m._direction_inputs()
with torch.no_grad():
    for proj in (torch.bfloat16, torch.float32, None):
        got, want = tp.pack_directions(p, proj), vm.stack_directions(p, False, proj)
        for i, (g, w) in enumerate(zip(got, want)):
            if w is None:
                assert g is None; continue
            assert g.dtype == w.dtype and g.shape == w.shape and g.stride() == w.stride(), (i, g.dtype, w.dtype)
            d = ((g.double() - w.double()).abs() / w.double().abs().clamp_min(1e-30)).max().item()
            print(f"proj {proj} out {i} {tuple(g.shape)} {g.dtype}: max rel diff {d:.2e}")
step = _env.make_step(model, "train", 128, 224)
orig = vm._packer
class Off:
    @staticmethod
    def pack_directions(params, proj):
        return None
for _ in range(4):
    step()
res = {"pack": [], "flat": []}
for rnd in range(4):
    for tag in ("pack", "flat"):
        vm._packer = orig if tag == "pack" else (lambda: Off)
        step(); torch.cuda.synchronize()
        for _ in range(6):
            t0 = time.perf_counter(); step(); t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
            res[tag].append(((t2 - t0) * 1e3, (t1 - t0) * 1e3))
for tag, v in res.items():
    print(f"{tag}: wall {statistics.median(x for x, _ in v):.2f} ms, host {statistics.median(y for _, y in v):.2f} ms (n={len(v)})")
