"""RMS normalization, plain and gated (the output norm of most linear-attention layers), and the L2
normalization of queries and keys."""

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


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / max(||x||, eps) over the last dimension: ``F.normalize(x, dim=-1)`` with a one-node backward.

    The delta rules normalize q and k of every head at every step; autograd through ``F.normalize``
    records a norm, a clamp, an expand and a division (~1.6x the time of this at the tiers' shapes).
    """
    return _L2Normalize.apply(x, eps)


class _L2Normalize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, eps: float) -> Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        inv = norm.clamp_min(eps).reciprocal()
        y = x * inv
        # Where the norm was clamped, y = x / eps is linear in x and has no projection term.
        ctx.save_for_backward(y, inv, norm > eps)
        return y

    @staticmethod
    def backward(ctx, dy: Tensor) -> tuple[Tensor, None]:
        y, inv, unclamped = ctx.saved_tensors
        along = (dy * y).sum(-1, keepdim=True) * unclamped
        return inv * (dy - y * along), None
