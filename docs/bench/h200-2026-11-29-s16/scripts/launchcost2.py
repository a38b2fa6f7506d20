"""Host time of one launch of each scan kernel, split: Triton's path, the fast launch, the compiled kernel's
runner, its launcher with the stream given, the launcher with pointers passed as ints (no driver pointer
check), and the runner's own lookups (current device / stream, launch metadata)."""
import time, torch, triton
from triton.runtime import driver
from vssm.kernels import selective_scan
from vssm.kernels.launch import FastLaunch, _split
from vssm.kernels.selective_scan import triton_fwd as tf, triton_bwd as tb, triton_carry as tc
dev = "cuda"
captured = {}
def capture(mod, name):
    real = getattr(mod, name)
    class Cap:
        def __getitem__(self, grid):
            def run(*a, **k):
                captured.setdefault(name, (real, grid, a, k))
                return real[grid](*a, **k)
            return run
    setattr(mod, name, Cap())
    return real
reals = {(m, n): capture(m, n) for m, n in [(tf, "_fwd_kernel"), (tb, "_bwd_kernel"), (tb, "run_carry_pair")] if n.endswith("kernel")}
reals[(tc, "_carry_pair_kernel")] = capture(tc, "_carry_pair_kernel")
u = torch.randn(128, 256, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
dl = torch.randn(128, 256, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
A = -torch.rand(256, 16, device=dev).add(0.5).requires_grad_()
Bm = torch.randn(128, 16, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
Cm = torch.randn(128, 16, 196, device=dev, dtype=torch.bfloat16).requires_grad_()
Dv = torch.randn(256, device=dev).requires_grad_(); bias = torch.randn(256, device=dev).requires_grad_()
y = selective_scan(u, dl, A, Bm, Cm, Dv, delta_bias=bias, delta_softplus=True); y.sum().backward()
torch.cuda.synchronize()
for (m, n), r in reals.items(): setattr(m, n, r)
def per_call(f, n=3000):
    for _ in range(100): f()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): f()
    t = (time.perf_counter() - t0) / n; torch.cuda.synchronize()
    return 1e6 * t
# the grid is replaced by (1,1,1): the GPU work of one program is short, so the host is the bound
for name, (real, grid, a, k) in captured.items():
    fl = real if isinstance(real, FastLaunch) else FastLaunch(real)
    jit = fl.kernel
    g1 = (1,) * len(grid)
    fl[g1](*a, **k)  # the fast launch's cache entry for this key
    compiled, tail = next(iter(fl._compiled.values()))[:2]
    full = list(a) + [k.get(p, d) for p, d in fl._params[len(a):]]
    dev_i = driver.active.get_current_device(); stream = driver.active.get_current_stream(dev_i)
    ints = [x.data_ptr() if isinstance(x, torch.Tensor) else x for x in full]
    ntens = sum(isinstance(x, torch.Tensor) for x in full)
    runner = compiled[(1, 1, 1)]
    res = {
        "triton path": per_call(lambda: jit[g1](*a, **k), 1000),
        "fast launch": per_call(lambda: fl[g1](*a, **k)),
        "runner": per_call(lambda: runner(*full)),
        "run(), stream given": per_call(lambda: compiled.run(1, 1, 1, stream, compiled.function, compiled.packed_metadata, None, None, None, *full)),
        "run(), ints": per_call(lambda: compiled.run(1, 1, 1, stream, compiled.function, compiled.packed_metadata, None, None, None, *ints)),
        "device+stream lookup": per_call(lambda: driver.active.get_current_stream(driver.active.get_current_device())),
        "launch_metadata": per_call(lambda: compiled.launch_metadata((1, 1, 1), stream, *full)),
        "data_ptr() x tensors": per_call(lambda: [x.data_ptr() for x in full if isinstance(x, torch.Tensor)]),
    "_split(args)": per_call(lambda: _split(a)),
    "runner, ints": per_call(lambda: runner(*_split(a)[1], *tail)),
    "current_device": per_call(torch.cuda.current_device),
    }
    print(f"{name} ({len(full)} args, {ntens} tensors): " + ", ".join(f"{k2} {v:.1f}" for k2, v in res.items()) + " us", flush=True)
import triton.knobs as kn
print("launch_enter_hook:", repr(kn.runtime.launch_enter_hook), " exit:", repr(kn.runtime.launch_exit_hook))
