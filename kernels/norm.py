"""RMS normalization, plain and gated (the output norm of most linear-attention layers)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _rms_normalize(x: Tensor, eps: float) -> Tensor:
    # Statistics in float32 so half-precision inputs do not lose the mean square.
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dimension."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return _rms_normalize(x, self.eps) * self.weight


class GatedRMSNorm(RMSNorm):
    """rmsnorm(x) * weight * silu(gate): the swish-gated output norm of GLA, RetNet and Gated DeltaNet."""

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        return _rms_normalize(x, self.eps) * self.weight * F.silu(gate)
