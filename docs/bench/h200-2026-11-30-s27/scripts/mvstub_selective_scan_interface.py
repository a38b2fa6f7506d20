"""CPU stand-in for mamba_ssm's selective_scan_fn: one autograd node (a Function over the project's reference), so
the official model's graph has the same node count as with the CUDA op."""
import torch
from vssm.kernels.selective_scan.reference import reference_forward, reference_backward

class _SF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.sp = delta_softplus
        with torch.enable_grad():
            pass
        from vssm.kernels.selective_scan import selective_scan
        with torch.no_grad():
            return selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, backend="reference")
    @staticmethod
    def backward(ctx, dout):
        u, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
        from vssm.kernels.selective_scan import selective_scan
        with torch.enable_grad():
            ins = [t.detach().requires_grad_(True) if t is not None else None for t in (u, delta, A, B, C, D, z, delta_bias)]
            out = selective_scan(*ins, ctx.sp, backend="reference")
            need = [t for t in ins if t is not None]
            gs = torch.autograd.grad(out, need, dout, allow_unused=True)
        it = iter(gs)
        return (*[next(it) if t is not None else None for t in ins], None)

def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False):
    return _SF.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
