"""Walking forward against the chunk kernel where the models call the scan without a backward (H200, bf16):
the op's forward (triton_forward) on the inputs the Vim mixer produces, channel-major batch-inner (today's
training layout) vs token-major (K, batch, L, D) storage; tiles variants; the gate kernel on each y layout.
Prints do_bench medians (ms) and each variant's max relative difference to the channel-major chunk output."""
import dataclasses, sys
import torch, triton
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd
from vssm.kernels.selective_scan.triton_common import DEFAULT_TILES
from vssm.kernels.selective_scan.op import prepare
from vssm.kernels.selective_scan.gate import gate_forward
torch.manual_seed(0)
dev = "cpu" if "--tiny" in sys.argv else "cuda"
dt = torch.bfloat16 if dev == "cuda" else torch.float32
shapes = [(2, 64, 9, 4)] if dev == "cpu" else [(128, 768, 197, 16), (128, 384, 197, 16), (64, 384, 197, 16), (8, 384, 6085, 16), (32, 384, 1025, 16)]
def bench(f):
    if dev == "cpu":
        return f() is None
    f(); torch.cuda.synchronize()
    return triton.testing.do_bench(f, warmup=10, rep=100)
for (batch, D, L, N) in shapes:
    K, R = 2, (D // 16 + 1) if D == 384 else D // 16
    M = R + 2 * N
    # the same values in both layouts
    u0 = torch.randn(K, batch, L, D, device=dev, dtype=dt)
    d0 = torch.randn(K, batch, L, D, device=dev, dtype=dt) * 0.5 - 1.0
    x0 = torch.randn(K, batch, L, M, device=dev, dtype=dt)
    z = torch.randn(batch, L, D, device=dev, dtype=dt).transpose(1, 2)
    A = -torch.rand(K, D, N, device=dev).add(0.5)
    Dv = torch.randn(K, D, device=dev); bias = torch.randn(K, D, device=dev) * 0.1
    tm = dict(u=u0.permute(1, 0, 3, 2), delta=d0.permute(1, 0, 3, 2), x=x0.permute(1, 0, 3, 2))
    cm = dict(u=u0.permute(0, 3, 1, 2).contiguous().permute(2, 0, 1, 3),
              delta=d0.permute(0, 3, 1, 2).contiguous().permute(2, 0, 1, 3),
              x=x0.permute(0, 3, 1, 2).contiguous().permute(2, 0, 1, 3))
    res, ref = {}, None
    def run(lay, tiles, zz=None):
        x = lay["x"]
        Bm, Cm = x[:, :, R:R + N].unsqueeze(2), x[:, :, R + N:].unsqueeze(2)
        args = prepare(lay["u"], lay["delta"], A, Bm, Cm, Dv, zz, bias, True, ["natural", "reverse"], None,
                       "mean", "triton", grad=False)
        return lambda: triton_fwd.triton_forward(*args[:11], tiles=tiles)[0]
    base = dataclasses.replace(DEFAULT_TILES, fwd_walk=False)
    variants = {"chunk cm": (cm, base, None), "chunk tm": (tm, base, None), "chunk tm z": (tm, base, z)}
    for bd in ((4, 8) if dev == 'cpu' else (32, 64, 128)):
        for loop in (True, False):
            t = dataclasses.replace(DEFAULT_TILES, fwd_walk=True, fwd_walk_bd=bd,
                                    fwd_walk_loop_min_programs=1 if loop else 1 << 30)
            variants[f"walk bd{bd} {'loop' if loop else 'each'}"] = (tm, t, None)
            if bd in (8, 128):
                variants[f"walk bd{bd} {'loop' if loop else 'each'} z"] = (tm, t, z)
    variants["default tm"] = (tm, DEFAULT_TILES, None)
    variants["default cm"] = (cm, DEFAULT_TILES, None)
    outs = {}
    for name, (lay, tiles, zz) in variants.items():
        try:
            f = run(lay, tiles, zz)
            res[name] = bench(f)
            outs[name] = f().float()
        except Exception as e:  # noqa
            res[name] = float("nan"); print(name, "failed:", repr(e)[:200])
    refs = {False: outs["chunk cm"], True: outs["chunk tm z"]}
    line = []
    for name in res:
        if name not in outs:
            continue
        r = refs[name.endswith(" z")]
        err = ((outs[name] - r).abs().max() / r.abs().max()).item()
        line.append(f"{name}: {res[name]:.3f} ms (diff {err:.1e}, max {outs[name].abs().max().item():.3g})")
    # the gate on each y layout
    y_cm = outs["chunk cm"].to(dt); y_tm = outs["chunk tm"].to(dt)
    out_tm = torch.empty(batch, L, D, device=dev, dtype=dt).transpose(1, 2)
    for nm, y in (("gate y cm", y_cm), ("gate y tm", y_tm)):
        line.append(f"{nm}: {bench(lambda: gate_forward(y, z, dev == 'cuda' or True, out=out_tm)):.3f} ms")
    print(f"(b{batch}, D{D}, L{L}, N{N}, K{K}):\n  " + "\n  ".join(line), flush=True)
