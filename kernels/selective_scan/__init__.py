"""Selective scan (Mamba-1 S6): the op, its step-by-step oracle, the chunked PyTorch path, the Triton kernels.

- `op.py`: `selective_scan` (checks, backend choice, the `torch.ops.vssm` ops);
- `orders.py`: visiting orders of multi-direction scans;
- `naive.py`: the step-by-step loop, the oracle of the tests;
- `reference.py`: the chunked pure-PyTorch scan (runs anywhere);
- `cpu.py`: the compiled CPU loops (numba), the CPU default;
- `triton_common.py` <- `triton_carry.py` <- `triton_fwd.py`, `triton_bwd.py`, `triton_bwd_n1.py`: the
  Triton kernels (imported lazily by the op).
- `projected.py`: `projected_scan`, the scan with x_proj / dt_proj inside (the Mamba mixers' path on CUDA);
- `gate.py` (Triton kernels in `gate_triton.py`): a gate shared by the directions, applied outside the scan.
"""

from .naive import selective_scan_naive
from .op import BACKENDS, COMBINES, default_backend, selective_scan
from .orders import ORDERS, order_index, register_order
from .reference import selective_scan_reference, selective_scan_reference_backward

__all__ = [
    "BACKENDS",
    "COMBINES",
    "ORDERS",
    "default_backend",
    "order_index",
    "register_order",
    "selective_scan",
    "selective_scan_naive",
    "selective_scan_reference",
    "selective_scan_reference_backward",
]
