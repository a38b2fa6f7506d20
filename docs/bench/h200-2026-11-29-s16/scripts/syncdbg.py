"""Host-device synchronisations inside one training step of each model (torch.cuda.set_sync_debug_mode)."""
import sys, warnings, torch, timm, vssm
sys.path.insert(0, ".official")
import _env
for name in sys.argv[1:]:
    m = _env.build(name).cuda()
    step = _env.make_step(m, "train", 8 if "vim" in name else 16, 224)
    step(); torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        step()
    torch.cuda.set_sync_debug_mode(0)
    msgs = [str(x.message).splitlines()[0][:150] for x in w if "sync" in str(x.message).lower()]
    print(f"{name}: {len(msgs)} synchronizing calls in one train step", *sorted(set(msgs))[:5], sep="\n  ", flush=True)
    del m; torch.cuda.empty_cache()
