"""EinFFT: SiMBA's spectral channel mixer (arXiv 2403.15360, Sec. 3; badripatro/simba).

For tokens x of shape (batch, L, C), the channels split into `num_blocks` blocks of C / num_blocks:

    X  = FFT(x)                        over the token axis (and the block axis when fft_over_blocks), ortho
    H  = ReLU(Re(X W1 + b1)) + i ReLU(Im(X W1 + b1))       W1: complex block-diagonal (one matrix per block)
    Y  = softshrink(H W2 + b2, lambda)                      on real and imaginary parts separately
    y  = Re(IFFT(Y))

The complex products run as real matmuls on [Re | Im] concatenated along the channel axis with the
real 2x2 block form [[Wr, Wi], [-Wi, Wr]]: one batched matmul per layer instead of four, and no
complex arithmetic besides the two FFTs (which `torch.compile` leaves to the FFT library).
The FFTs run in float32 (float64 for float64 inputs) whatever the autocast state: cuFFT has no
bfloat16 transform, and half-precision transforms only take power-of-two lengths. Any token count works.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["EinFFT"]


class EinFFT(nn.Module):
    """SiMBA's EinFFT channel mixer: (batch, L, dim) -> (batch, L, dim).

    Args:
        dim: token width C; must be divisible by `num_blocks`.
        num_blocks: number of diagonal blocks of the complex linears (4 in SiMBA).
        sparsity_threshold: softshrink lambda applied to the spectrum (0.01 in SiMBA; 0 disables it).
        fft_over_blocks: transform over tokens and blocks (2-D FFT, as the released code) instead of over
            tokens only (as the paper's text).
        init_scale: std of the normal init of the complex weights and biases (0.02, as released).

    Parameters ``weight1``, ``weight2``: (2, num_blocks, C/num_blocks, C/num_blocks) and ``bias1``,
    ``bias2``: (2, num_blocks, C/num_blocks); index 0 is the real part, 1 the imaginary part, and a
    block maps its input channels (third axis) to its output channels (fourth axis).
    """

    def __init__(
        self,
        dim: int,
        num_blocks: int = 4,
        sparsity_threshold: float = 0.01,
        fft_over_blocks: bool = True,
        init_scale: float = 0.02,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("num_blocks", num_blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EinFFT: `{name}` must be a positive int, got {value!r}")
        if dim % num_blocks:
            raise ValueError(f"EinFFT: `dim`={dim} must be divisible by `num_blocks`={num_blocks}")
        if sparsity_threshold < 0:
            raise ValueError(f"EinFFT: `sparsity_threshold` must be >= 0, got {sparsity_threshold}")
        dd = {"device": device, "dtype": dtype}
        self.dim = dim
        self.num_blocks = num_blocks
        self.block_size = dim // num_blocks
        self.sparsity_threshold = float(sparsity_threshold)
        self.fft_over_blocks = bool(fft_over_blocks)
        self.init_scale = init_scale
        nb, bs = num_blocks, self.block_size
        self.weight1 = nn.Parameter(torch.empty(2, nb, bs, bs, **dd))
        self.bias1 = nn.Parameter(torch.empty(2, nb, bs, **dd))
        self.weight2 = nn.Parameter(torch.empty(2, nb, bs, bs, **dd))
        self.bias2 = nn.Parameter(torch.empty(2, nb, bs, **dd))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for p in (self.weight1, self.bias1, self.weight2, self.bias2):
            nn.init.normal_(p, std=self.init_scale)

    @staticmethod
    def _real_form(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Complex block-diagonal (W, b) as real (nb, 2bs, 2bs), (nb, 2bs) acting on [Re | Im]."""
        wr, wi = weight[0], weight[1]
        top = torch.cat([wr, wi], dim=-1)  # rows fed by Re(x): Re gets +Wr, Im gets +Wi
        bottom = torch.cat([-wi, wr], dim=-1)  # rows fed by Im(x): Re gets -Wi, Im gets +Wr
        return torch.cat([top, bottom], dim=-2), torch.cat([bias[0], bias[1]], dim=-1)

    def _linear(self, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        w, b = self._real_form(weight, bias)
        return torch.einsum("...kd,kde->...ke", z.to(w.dtype), w) + b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, L, dim) -> (batch, L, dim), in x's dtype."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"EinFFT: input has shape {tuple(x.shape)}, expected (batch, L, dim={self.dim})")
        batch, L, _ = x.shape
        fft_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        xb = x.to(fft_dtype).reshape(batch, L, self.num_blocks, self.block_size)
        dims = (1, 2) if self.fft_over_blocks else (1,)
        spec = torch.fft.fftn(xb, dim=dims, norm="ortho")
        z = torch.cat([spec.real, spec.imag], dim=-1)  # (batch, L, nb, 2 * bs)
        z = F.relu(self._linear(z, self.weight1, self.bias1))
        z = self._linear(z, self.weight2, self.bias2)
        if self.sparsity_threshold > 0:
            z = F.softshrink(z, self.sparsity_threshold)
        re, im = z.to(fft_dtype).chunk(2, dim=-1)
        y = torch.fft.ifftn(torch.complex(re, im), dim=dims, norm="ortho").real
        return y.reshape(batch, L, self.dim).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_blocks={self.num_blocks}, sparsity_threshold={self.sparsity_threshold}, "
            f"fft_over_blocks={self.fft_over_blocks}"
        )
