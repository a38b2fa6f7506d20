"""Every host-launched Triton kernel compiles for the H100/H200 (sm_90), without a GPU.

The interpreter (TRITON_INTERPRET=1, the other kernel tests) runs the kernels' Python, not Triton's compiler,
so it misses what only the compiler checks: a loop-carried variable whose type changes, a return whose types
differ between branches, a layout that does not lower. Those only showed on the lent GPU before; here they fail
on the CPU. Each kernel is compiled in the constexpr combinations the ops launch (see the launch sites).
"""

from __future__ import annotations

import pytest

import vssm  # noqa: F401  (registers the ops the kernel modules import)

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from vssm.kernels.conv1d import triton_conv1d  # noqa: E402
from vssm.kernels.layernorm import triton_layernorm  # noqa: E402
from vssm.kernels.selective_scan import (  # noqa: E402
    gate_triton,
    triton_bwd,
    triton_bwd_n1,
    triton_carry,
    triton_conv_proj,
    triton_fwd,
    triton_pack,
    triton_thin,
)

MODULES = (triton_fwd, triton_bwd, triton_bwd_n1, triton_carry, gate_triton, triton_conv1d, triton_layernorm,
           triton_thin, triton_pack, triton_conv_proj)
SCAN = dict(SOFTPLUS=True, GATHER=False, IDX64=False)

# (kernel name, constexprs, num_warps): the models' combinations and the switches each kernel has
COMBOS = [
    # chunk forward: Vim (z, directions in turn or apart), VMamba's gathered orders, kept states, segments, int64
    ("_fwd_kernel", dict(HAS_Z=True, HAS_H0=False, PREFETCH=True, MODE=1, STORE=False, BLOCK_D=8, NP=16, T=32,
                         SMID=False, **SCAN), 4),
    ("_fwd_kernel", dict(HAS_Z=False, HAS_H0=True, PREFETCH=True, MODE=0, STORE=True, BLOCK_D=8, NP=16, T=32,
                         SOFTPLUS=True, GATHER=True, IDX64=True, SMID=False), 4),
    ("_fwd_kernel", dict(HAS_Z=False, HAS_H0=False, PREFETCH=False, MODE=0, STORE=True, BLOCK_D=64, NP=1, T=16,
                         SOFTPLUS=True, GATHER=True, IDX64=False, SMID=False), 2),
    ("_fwd_kernel", dict(HAS_Z=False, HAS_H0=False, PREFETCH=False, MODE=0, STORE=False, BLOCK_D=4, NP=64, T=16,
                         SMID=False, **SCAN), 8),
    # ... with states-middle tiles (SMID): Vim's gated directions apart at 1248, and every other switch
    ("_fwd_kernel", dict(HAS_Z=True, HAS_H0=False, PREFETCH=True, MODE=0, STORE=False, BLOCK_D=8, NP=16, T=16,
                         SMID=True, **SCAN), 1),
    ("_fwd_kernel", dict(HAS_Z=False, HAS_H0=True, PREFETCH=True, MODE=1, STORE=True, BLOCK_D=8, NP=8, T=16,
                         SOFTPLUS=True, GATHER=True, IDX64=True, SMID=True), 1),
    # ... inference: the softplus's log from lg2.approx (inline PTX, SOFTPLUS=2), states-middle, states-last, N = 1
    ("_fwd_kernel", dict(HAS_Z=True, HAS_H0=False, PREFETCH=True, MODE=0, STORE=False, BLOCK_D=8, NP=16, T=16,
                         SMID=True, SOFTPLUS=2, GATHER=False, IDX64=False), 1),
    ("_fwd_kernel", dict(HAS_Z=True, HAS_H0=True, PREFETCH=True, MODE=1, STORE=False, BLOCK_D=8, NP=16, T=32,
                         SMID=False, SOFTPLUS=2, GATHER=False, IDX64=False), 4),
    ("_fwd_kernel", dict(HAS_Z=False, HAS_H0=False, PREFETCH=False, MODE=0, STORE=False, BLOCK_D=64, NP=1, T=16,
                         SOFTPLUS=2, GATHER=True, IDX64=False, SMID=False), 2),
    # walking forward: directions in turn, segments, gathered, int64
    ("_fwd_walk_kernel", dict(HAS_Z=False, HAS_H0=False, MODE=1, BLOCK_D=128, NP=16, EVEN_N=True, **SCAN), 4),
    ("_fwd_walk_kernel", dict(HAS_Z=True, HAS_H0=True, MODE=0, BLOCK_D=128, NP=8, SOFTPLUS=False, GATHER=True,
                              IDX64=True, EVEN_N=False), 4),
    ("_fwd_walk_kernel", dict(HAS_Z=True, HAS_H0=False, MODE=0, BLOCK_D=128, NP=16, SOFTPLUS=2, GATHER=False,
                              IDX64=False, EVEN_N=True), 4),
    # backward chunks: N 16 (Vim), N 64 short tiles (SiMBA), gathered int64
    ("_bwd_kernel", dict(HAS_Z=True, BLOCK_D=8, NP=16, T=16, **SCAN), 4),
    ("_bwd_kernel", dict(HAS_Z=False, BLOCK_D=4, NP=64, T=8, **SCAN), 4),
    ("_bwd_kernel", dict(HAS_Z=False, BLOCK_D=8, NP=16, T=16, SOFTPLUS=True, GATHER=True, IDX64=True), 4),
    ("_bwd_walk_kernel", dict(HAS_Z=False, BLOCK_D=128, NP=1, T=32, SOFTPLUS=True, HAS_DLAST=False, GATHER=True,
                              IDX64=False), 4),
    ("_bwd_walk_kernel", dict(HAS_Z=True, BLOCK_D=128, NP=1, T=32, SOFTPLUS=False, HAS_DLAST=True, GATHER=False,
                              IDX64=True), 4),
    # carries: the forward's walk and two passes, the backward's pair
    ("_carry_kernel", dict(ADJOINT=False, HAS_Z=False, HAS_INIT=False, BLOCK_D=8, NP=16, T=32, **SCAN), 4),
    ("_carry_kernel", dict(ADJOINT=False, HAS_Z=False, HAS_INIT=False, BLOCK_D=64, NP=1, T=16, SOFTPLUS=True,
                           GATHER=True, IDX64=True), 2),
    ("_carry_local_kernel", dict(BLOCK_D=8, NP=16, T=32, **SCAN), 4),
    ("_carry_local_kernel", dict(BLOCK_D=64, NP=1, T=16, SOFTPLUS=False, GATHER=True, IDX64=True), 2),
    ("_carry_combine_kernel", dict(BLOCK_D=8, NP=16), 4),
    ("_carry_combine_kernel", dict(BLOCK_D=64, NP=1), 2),
    ("_carry_pair_kernel", dict(HAS_Z=True, BLOCK_D=8, NP=16, T=16, HAS_DLAST=False, **SCAN), 4),
    ("_carry_pair_kernel", dict(HAS_Z=False, BLOCK_D=64, NP=1, T=16, SOFTPLUS=True, HAS_DLAST=True, GATHER=True,
                                IDX64=True), 2),
    ("_gate_fwd_kernel", dict(BLOCK_D=64, BLOCK_L=64), 4),
    ("_gate_bwd_kernel", dict(NEED_DZ=True, BLOCK_D=64, BLOCK_L=64), 4),
    ("_gate_bwd_kernel", dict(NEED_DZ=False, BLOCK_D=64, BLOCK_L=64), 4),
    ("_conv_fwd", dict(W=4, HAS_BIAS=True, SILU=True, BL=64, BC=64), 4),
    ("_conv_fwd", dict(W=3, HAS_BIAS=False, SILU=False, BL=64, BC=64), 4),
    ("_conv_bwd_g", dict(W=4, WP=4, HAS_BIAS=True, SILU=True, BL=64, BC=64, CHUNK=4), 4),
    ("_conv_bwd_g", dict(W=3, WP=4, HAS_BIAS=False, SILU=False, BL=64, BC=64, CHUNK=4), 4),
    ("_conv_bwd_dx", dict(W=4, BL=64, BC=64), 4),
    ("_ln_fwd", dict(HAS_W=True, HAS_B=True, BLOCK_M=16, BLOCK_C=128, RMS=False, STATS=True), 4),
    ("_ln_fwd", dict(HAS_W=True, HAS_B=False, BLOCK_M=32, BLOCK_C=256, RMS=True, STATS=False), 4),
    # the thin matmul (dt_proj): Vim-Ti's rank 12 padded to 16, a rank 64
    ("_thin_bmm", dict(RP=16, BLOCK_M=32, BLOCK_N=256), 4),
    ("_thin_bmm", dict(RP=64, BLOCK_M=64, BLOCK_N=64), 4),
    ("_ln_bwd", dict(HAS_W=True, NEED_DW=True, NEED_DB=True, BLOCK_M=16, BLOCK_C=128, FIN_P=16, FIN_C=128), 4),
    ("_ln_bwd", dict(HAS_W=False, NEED_DW=False, NEED_DB=False, BLOCK_M=16, BLOCK_C=128, FIN_P=16, FIN_C=128), 4),
    # inference's conv + x_proj + dt_proj: Vim's bfloat16 (rank 12, 16 states: TF32 products), float32 at the limits
    ("_conv_proj_fwd", dict(W=4, HAS_BIAS=True, BL=64, BC=64, RP=16, SP=32, PREC="tf32", WIDEN=False), 4),
    ("_conv_proj_fwd", dict(W=2, HAS_BIAS=False, BL=64, BC=64, RP=64, SP=64, PREC="ieee", WIDEN=True), 4),
    # the training forward's stacked parameters: weights rounded to bfloat16 on their bits (Vim under autocast), or
    # cast as they are (float32), with and without conv bias
    ("_pack_kernel", dict(HAS_BIAS=True, TO_BF16=True, BLOCK=1024), 4),
    ("_pack_kernel", dict(HAS_BIAS=False, TO_BF16=False, BLOCK=1024), 4),
    ("_pack_kernel", dict(HAS_BIAS=True, TO_BF16=False, BLOCK=1024), 4),
]
# pointers of another dtype than float32, per kernel and combination (TO_BF16, HAS_BIAS): the bfloat16 weights stored as
# their int16 bits, float16 weights (autocast to float16); float32 otherwise
# (the conv-projection kernel: its activations and weights in the model's dtype, taps and bias float32)
_CONV_PROJ = ("x", "wx", "wdt", "u", "xdbl", "delta")
POINTER_DTYPES = {("_pack_kernel", True, True): {"wout_ptr": "*i16"}, ("_pack_kernel", False, False): {"wout_ptr": "*fp16"},
                  ("_conv_proj_fwd", None, True): dict.fromkeys(_CONV_PROJ, "*bf16"),
                  ("_conv_proj_fwd", None, False): dict.fromkeys(_CONV_PROJ, "*fp32")}


def _launched_kernels() -> dict[str, JITFunction]:
    """The kernels the host launches: `fast_launch` wrappers (their `kernel`) in the kernel modules."""
    found = {}
    for mod in MODULES:
        for name, obj in vars(mod).items():
            inner = getattr(obj, "__dict__", {}).get("kernel")
            if isinstance(inner, JITFunction):
                found[name] = inner
    return found


KERNELS = _launched_kernels()


# pointer arguments not named *_ptr (the conv and LayerNorm kernels), and the int32 ones
POINTERS = {"x", "w", "b", "bias", "y", "out", "dout", "g", "dw_part", "db_part", "dx", "dy", "dw", "db", "stats",
            "part", "counter"}
INT_POINTERS = {"order_ptr", "counter"}


def _signature(fn: JITFunction, constexprs: dict) -> dict:
    """Pointers as float32 (the order table's and the LayerNorm counter as int32), `scale` / `eps` as float32,
    other arguments int32."""
    sig = {}
    for p in fn.params:
        if p.is_constexpr:
            sig[p.name] = "constexpr"
        elif p.name.endswith("_ptr") or p.name in POINTERS:
            sig[p.name] = "*i32" if p.name in INT_POINTERS else "*fp32"
        elif p.name in ("scale", "eps"):
            sig[p.name] = "fp32"
        else:
            sig[p.name] = "i32"
    missing = [p.name for p in fn.params if p.is_constexpr and p.name not in constexprs]
    assert not missing, f"{fn.__name__}: constexprs {missing} have no value in COMBOS"
    return sig


def test_every_launched_kernel_has_a_combination():
    assert set(KERNELS) == {name for name, _, _ in COMBOS}, (
        "kernels launched from the host and the ones COMBOS compiles differ")


@pytest.mark.parametrize("name,constexprs,warps", COMBOS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(COMBOS)])
def test_kernel_compiles_for_sm90(name, constexprs, warps, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # compile, not a cache hit
    fn = KERNELS[name]
    sig = _signature(fn, constexprs)
    sig.update(POINTER_DTYPES.get((name, constexprs.get("TO_BF16"), constexprs.get("HAS_BIAS")), {}))
    src = ASTSource(fn, signature=sig,
                    constexprs={(fn.arg_names.index(k),): v for k, v in constexprs.items()})
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
    assert compiled.asm.get("cubin"), f"{name}: no cubin"
