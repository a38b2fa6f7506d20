"""Compile a scan kernel for sm_90a here (no GPU): registers, spills, SASS. argv: walk|chunk [constexpr=val ...]"""
import sys, re, inspect
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import vssm  # noqa
from vssm.kernels.selective_scan import triton_fwd as tf
which = sys.argv[1]
over = dict(a.split("=") for a in sys.argv[2:])
ones = set(over.pop("one", "").split(",")) - {""}
kern = (tf._fwd_walk_kernel if which == "walk" else tf._fwd_kernel).kernel
ptr = {"u_ptr": "*bf16", "delta_ptr": "*bf16", "z_ptr": "*bf16", "out_ptr": "*bf16", "B_ptr": "*bf16", "C_ptr": "*bf16"}
sig, const = {}, {}
cdefault = dict(HAS_Z=False, SOFTPLUS=True, HAS_H0=False, MODE=0, GATHER=False, IDX64=False, BLOCK_D=128, NP=16,
                PREFETCH=True, STORE=False, T=32)
for p in kern.params:
    n = p.name
    if p.is_constexpr:
        v = over.get(n, cdefault.get(n))
        v = int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else (v == "True" if v in ("True", "False") else v)
        const[n] = v; sig[n] = "constexpr"
    elif n.endswith("_ptr"):
        sig[n] = ptr.get(n, "*fp32")
    elif n in ones:
        sig[n] = "constexpr"; const[n] = 1
    elif n == "scale":
        sig[n] = "fp32"
    else:
        sig[n] = "i32"
warps = int(over.get("num_warps", 4))
src = ASTSource(kern, sig, const)
k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=warps))
import subprocess, os
bin_dir = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
open(f"/tmp/{which}.cubin", "wb").write(k.asm["cubin"])
res = subprocess.run([f"{bin_dir}/cuobjdump", "-res-usage", f"/tmp/{which}.cubin"], capture_output=True, text=True).stdout
print(which, over, " ".join(re.findall(r"REG:\d+|STACK:\d+|SHARED:\d+|LOCAL:\d+", res)))
sass = subprocess.run([f"{bin_dir}/nvdisasm", "-c", f"/tmp/{which}.cubin"], capture_output=True, text=True).stdout
open(f"/tmp/{which}.sass", "w").write(sass)
open(f"/tmp/{which}.ptx", "w").write(k.asm["ptx"])
