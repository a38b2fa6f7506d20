"""Vim's training step with the stacked parameters as one autograd node (`_DirectionParams`, the new default) against
the same stacking recorded op by op (the path before, taken here by making `vssm.mamba.plain_eager` answer False),
alternating in one process: per round 10 steps each, host ms of forward / zero_grad + backward / optimizer and the
wall from a synchronisation to the next (the harness's protocol, bf16 autocast, batch 128 at 224, AdamW)."""
import os, sys, time, statistics
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch, torch.nn as nn
import vssm.mamba as vm
_env.use_project()
real = vm.plain_eager
for name in sys.argv[1:]:
    m = _env.build(name).cuda().train()
    x = torch.randn(128, 3, 224, 224, device="cuda")
    y = torch.randint(0, 10, (128,), device="cuda")
    opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
    def step():
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(m(x).float(), y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        torch.cuda.synchronize()
        return [t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t0]
    res = {"one node": [], "op by op": []}
    for mode in res:  # warm both paths
        vm.plain_eager = real if mode == "one node" else (lambda *a: False)
        for _ in range(5):
            step()
    for rnd in range(6):
        for mode in (("one node", "op by op") if rnd % 2 == 0 else ("op by op", "one node")):
            vm.plain_eager = real if mode == "one node" else (lambda *a: False)
            torch.cuda.synchronize()
            res[mode] += [step() for _ in range(10)]
    for mode, rows in res.items():
        med = [statistics.median(c) * 1e3 for c in zip(*rows)]
        print(f"{name} {mode:9s} host ms fwd {med[0]:.2f} bwd {med[1]:.2f} opt {med[2]:.2f} | wall {med[3]:.2f} "
              f"(img/s {128e3 / med[3]:.1f}, 60 steps)", flush=True)
    del m, opt
    torch.cuda.empty_cache()
