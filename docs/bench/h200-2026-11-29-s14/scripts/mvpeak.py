"""MambaVision-T inference peak (the e2e protocol's max_memory_allocated) fresh, after SiMBA-S ran in the
same process, and after cuFFT's plan cache is cleared; what stays allocated between models."""
import sys, torch, timm
sys.path.insert(0, ".")
import vssm  # noqa: F401
MiB = 2**20

def step(name, mode):
    m = timm.create_model(name).cuda()
    x = torch.randn(128, 3, 224, 224, device="cuda")
    y = torch.randint(0, 10, (128,), device="cuda")
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    if mode == "infer":
        m.eval()
        for _ in range(3):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                m(x)
    else:
        opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
        for _ in range(3):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(m(x).float(), y)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        del opt
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del m, x, y
    torch.cuda.empty_cache()
    print(f"{name:14s} {mode:5s} allocated before {base / MiB:8.1f} MiB, peak {peak / MiB:8.1f} MiB, "
          f"left after {torch.cuda.memory_allocated() / MiB:6.1f} MiB", flush=True)

step("mambavision_t", "infer")
step("mambavision_t", "infer")
step("simba_s", "infer")
step("simba_s", "train")
step("mambavision_t", "infer")
torch.backends.cuda.cufft_plan_cache.clear()
torch.cuda.empty_cache()
print("cufft plan cache cleared: allocated", torch.cuda.memory_allocated() / MiB, "MiB")
step("mambavision_t", "infer")
step("vim_small_patch16_224", "train")
step("mambavision_t", "infer")
