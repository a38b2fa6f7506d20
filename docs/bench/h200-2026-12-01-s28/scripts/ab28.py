"""Stop 28 A/B, alternating in one process, the harness's protocol (bf16 autocast, batch 128 at 224, AdamW, a sync per
step). argv: train|infer model... ; env ROUNDS, AB.
AB unset (call 4): MambaVision's mixer forward, new (the tree's) against old (fcd15fd's, from .gpu/mv_old.py).
AB=projected (call 3, on a tree not kept): the mixer's `projected` attribute, None (x_proj / dt_proj inside
`projected_scan`, that tree's default on CUDA) against False (the Linears + the plain op)."""
import ast, os, sys, time, statistics
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
import _env
import torch, torch.nn as nn
_env.use_project()
import vssm  # noqa
import vssm.models.mambavision as mvmod
from vssm.models.mambavision import MambaVisionMixer

if os.environ.get("AB") == "projected":
    def use(m, mode):
        for mod in m.modules():
            if isinstance(mod, MambaVisionMixer):
                mod.projected = None if mode == "new" else False
else:
    src = open(".gpu/mv_old.py").read()
    tree = ast.parse(src)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MambaVisionMixer")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    ns = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "mv_old", "exec"), vars(mvmod), ns)
    OLD, NEW = ns["forward"], MambaVisionMixer.forward

    def use(m, mode):
        MambaVisionMixer.forward = NEW if mode == "new" else OLD

mode_arg = sys.argv[1]
rounds = int(os.environ.get("ROUNDS", 6))
for name in sys.argv[2:]:
    m = _env.build(name).cuda()
    x = torch.randn(128, 3, 224, 224, device="cuda")
    y = torch.randint(0, 10, (128,), device="cuda")
    if mode_arg == "train":
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
        def step():
            torch.cuda.synchronize()
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
    else:
        m.eval()
        def step():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                m(x)
            t1 = time.perf_counter()
            torch.cuda.synchronize()
            return [t1 - t0, 0.0, 0.0, time.perf_counter() - t0]
    res = {"new": [], "old": []}
    peak = {}
    for mode in res:
        use(m, mode)
        torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        for _ in range(5):
            step()
        peak[mode] = torch.cuda.max_memory_allocated() / 2**30
    for rnd in range(rounds):
        for mode in (("new", "old") if rnd % 2 == 0 else ("old", "new")):
            use(m, mode)
            res[mode] += [step() for _ in range(10)]
    for mode, rows in res.items():
        med = [statistics.median(c) * 1e3 for c in zip(*rows)]
        print(f"{name} {mode_arg} {mode} host ms fwd {med[0]:.2f} bwd {med[1]:.2f} opt {med[2]:.2f} | wall {med[3]:.2f} "
              f"(img/s {128e3 / med[3]:.1f}, {len(rows)} steps, peak {peak[mode]:.2f} GiB)", flush=True)
    use(m, "new")
    del m
    torch.cuda.empty_cache()
