"""Stop 30 call 2: tiles of the thin dt_proj kernel, the RMS kernel, the conv (all tap sets per program), then
model A/Bs (profiler GPU time per step) with each change toggled."""
import dataclasses, os, sys, time
import torch
import torch.nn.functional as F
from triton.testing import do_bench
import vssm  # noqa
from vssm.kernels.conv1d import triton_conv1d as tc
from vssm.kernels.selective_scan import projected as pj
from vssm.kernels.selective_scan import triton_thin as tt
from vssm.kernels.layernorm import rms_norm
import vssm.norm as vn
from timm.layers import RmsNorm as TimmRms

torch.manual_seed(0)
dev, bf = "cuda", torch.bfloat16


def bench(tag, fn, nbytes=None):
    fn()
    ms = do_bench(fn, warmup=25, rep=150, return_mode="median")
    extra = f"  {nbytes / ms / 1e9:.2f} TB/s" if nbytes else ""
    print(f"{tag:64s} {ms * 1e3:8.1f} us{extra}", flush=True)
    return ms


part = sys.argv[1] if len(sys.argv) > 1 else "all"
if part in ("all", "micro"):
    print("== dt_proj thin")
    for (K, E, R, Ntok) in ((2, 384, 12, 8 * 6085), (2, 768, 24, 128 * 197), (2, 384, 12, 128 * 197)):
        w = torch.randn(K, E, R, device=dev, dtype=bf) * 0.2
        xd = torch.randn(K, R + 32, Ntok, device=dev, dtype=bf)
        x = xd[:, :R]
        out = torch.empty(K, E, Ntok, device=dev, dtype=bf)
        nb = out.numel() * 2
        ref = torch.bmm(w.float(), x.float())
        bench(f"cuBLAS bmm {K, E, R, Ntok}", lambda: torch.bmm(w, x, out=out), nb)
        for bm, bn, wp in ((64, 128, 4), (64, 256, 4), (128, 128, 4), (128, 256, 8), (32, 256, 4), (64, 64, 4),
                           (128, 64, 4), (64, 256, 8)):
            bench(f"thin bm{bm} bn{bn} w{wp}", lambda: tt.thin_bmm(w, x, out, bm, bn, wp), nb)
            err = (out.float() - ref).abs().max().item()
            if err > 0.07:
                print("   ERR", err)
    print("== rms")
    x = torch.randn(8, 6085, 192, device=dev) * 2
    wn = torch.rand(192, device=dev) + 0.5
    bench("torch.rms_norm fp32 + cast", lambda: torch.rms_norm(x, (192,), wn, 1e-5).to(bf), x.numel() * 6)
    bench("rms_norm kernel fp32 -> bf16", lambda: rms_norm(x, wn, 1e-5, out_dtype=bf), x.numel() * 6)
    print("   err", (rms_norm(x, wn, 1e-5, out_dtype=bf).float() - torch.rms_norm(x, (192,), wn, 1e-5)).abs().max().item())
    x = torch.randn(128, 197, 384, device=dev) * 2
    wn = torch.rand(384, device=dev) + 0.5
    bench("Vim-S torch.rms_norm fp32 + cast", lambda: torch.rms_norm(x, (384,), wn, 1e-5).to(bf), x.numel() * 6)
    bench("Vim-S rms_norm kernel fp32 -> bf16", lambda: rms_norm(x, wn, 1e-5, out_dtype=bf), x.numel() * 6)
    print("== conv")
    from vssm.kernels.conv1d.op import depthwise_conv1d_reference
    for (b, L, E) in ((8, 6085, 384), (128, 197, 768)):
        xz = torch.randn(b, L, 2 * E, device=dev, dtype=bf)
        xs = xz[..., :E]
        taps = torch.randn(2, E, 4, device=dev, dtype=bf) * 0.3
        cb = torch.randn(2, E, device=dev, dtype=bf) * 0.1
        ref = depthwise_conv1d_reference(xs, taps, cb, [-3, 0], True)
        nb = b * L * E * 2 * 3
        for allk in (False, True):
            for BL, BC, wp in ((128, 64, 4), (64, 64, 4), (128, 32, 4), (256, 32, 4), (64, 128, 4), (128, 64, 8),
                               (256, 64, 8), (32, 128, 4)):
                t = dataclasses.replace(tc.DEFAULT_TILES, fwd_cm_BL=BL, fwd_cm_BC=BC)
                bench(f"conv {b, L, E} cm all_k={allk} BL{BL} BC{BC} w{wp}",
                      lambda: tc.triton_conv_forward(xs, taps, cb, (-3, 0), True, True, tiles=t), nb)
                o = tc.triton_conv_forward(xs, taps, cb, (-3, 0), True, True, tiles=t)
                err = (o.float() - ref.float()).abs().max().item()
                if err > 0.05:
                    print("   ERR", err)

if part in ("all", "model"):
    sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
    os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
    import timm
    import _env
    from torch.profiler import profile, ProfilerActivity
    new_fwd = vn.LinearInputRmsNorm.forward

    def old_fwd(self, x):
        return TimmRms.forward(self, x).to(self._out_dtype(x))

    conv_tiles = tc.triton_conv_forward.__defaults__[-1]
    best_conv, conv_tiles = conv_tiles, dataclasses.replace(conv_tiles, fwd_cm_BL=128)

    from vssm.kernels.selective_scan import triton_fwd as tf
    import vssm.models.vim as mv
    NEWT = tf.triton_forward.__kwdefaults__["tiles"]
    new_pe = mv.VimPatchEmbed.forward

    def old_pe(self, x):
        return self.proj(x).permute(0, 2, 3, 1)

    def config(norm, thin, fastlog, patch):
        vn.LinearInputRmsNorm.forward = new_fwd if norm else old_fwd
        tt.MAX_R = 64 if thin else 0
        tf.triton_forward.__kwdefaults__["tiles"] = dataclasses.replace(NEWT, fwd_fast_log=bool(fastlog))
        mv.VimPatchEmbed.forward = new_pe if patch else old_pe

    runs = [("vim_tiny_patch16_224", 1248, 8, "infer"), ("vim_tiny_patch16_224", 224, 128, "infer"),
            ("vim_small_patch16_224", 224, 128, "infer"), ("vim_small_patch16_224", 224, 128, "train")]
    for name, px, bs, mode in runs:
        model = (timm.create_model(name, img_size=px) if px != 224 else timm.create_model(name)).cuda()
        step = _env.make_step(model, mode, bs, px)
        cfgs = ([("base", 0, 0, 0, 0), ("norm", 1, 0, 0, 0), ("thin", 0, 1, 0, 0), ("fastlog", 0, 0, 1, 0),
                 ("patch", 0, 0, 0, 1), ("all", 1, 1, 1, 1), ("base", 0, 0, 0, 0), ("all", 1, 1, 1, 1)]
                if px == 1248 else [("base", 0, 0, 0, 0), ("all", 1, 1, 1, 1), ("base", 0, 0, 0, 0), ("all", 1, 1, 1, 1)])
        if mode == "infer":
            xin = torch.randn(bs, 3, px, px, device=dev)
            outs = {}
            for tag, *c in (("base", 0, 0, 0, 0), ("all", 1, 1, 1, 1)):
                config(*c)
                with torch.inference_mode(), torch.autocast("cuda", dtype=bf):
                    outs[tag] = model(xin).float()
            print(f"   logits all vs base: max abs {(outs['all'] - outs['base']).abs().max().item():.3e}, "
                  f"scale {outs['base'].abs().max().item():.3e}")
        for tag, *c in cfgs:
            config(*c)
            for _ in range(3):
                step()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(5):
                step()
            torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) / 5 * 1e3
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(3):
                    step()
                torch.cuda.synchronize()
            ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
            ev.sort(key=lambda e: -e.device_time_total)
            tot = sum(e.device_time_total for e in ev) / 3e3
            print(f"== {name} {px} b{bs} {mode} {tag}: wall {wall:.2f} ms/step, GPU {tot:.2f} ms/step", flush=True)
            for e in ev[:7]:
                print(f"   {e.device_time_total/3e3:8.2f} ms  {e.count//3:5d}x  {e.key[:80]}")
        del model, step
        torch.cuda.empty_cache()
