"""Feature maps phi applied to queries and keys before a linear-attention recurrence.

Every map acts on the last dimension, so it works on (B, H, T, K) and on single tokens (B, H, K).

``taylor2`` is the second-order Taylor map of BASED (Arora et al. 2024), scaled so that for K-dim inputs

    phi(q) . phi(k) = 1 + s + s^2 / 2,   s = q . k / sqrt(K),

the truncated expansion of exp(q . k / sqrt(K)), i.e. softmax attention's kernel. The map is
[1, x / K^(1/4), vec(x x^T) / (sqrt(2) sqrt(K))], of dimension 1 + K + K^2; its inner products are
always positive (1 + s + s^2/2 > 0), so a normalizing denominator never vanishes.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def _identity(x: Tensor) -> Tensor:
    return x


def _elu_p1(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


def _softmax(x: Tensor) -> Tensor:
    return x.softmax(dim=-1)


def _taylor2(x: Tensor) -> Tensor:
    K = x.shape[-1]
    x2 = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2)  # (..., K * K)
    ones = x.new_ones(*x.shape[:-1], 1)
    return torch.cat([ones, x / K**0.25, x2 / (math.sqrt(2.0) * math.sqrt(K))], dim=-1)


FEATURE_MAPS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": _identity,
    "elu_p1": _elu_p1,
    "relu": F.relu,
    "silu": F.silu,
    "softmax": _softmax,
    "taylor2": _taylor2,
}


def feature_map(name: str) -> Callable[[Tensor], Tensor]:
    """The feature map called ``name`` (one of ``FEATURE_MAPS``)."""
    if name not in FEATURE_MAPS:
        raise ValueError(f"unknown feature map {name!r}; expected one of {sorted(FEATURE_MAPS)}")
    return FEATURE_MAPS[name]


def feature_dim(name: str, K: int) -> int:
    """Output dimension of feature map ``name`` on K-dim inputs."""
    feature_map(name)
    return 1 + K + K * K if name == "taylor2" else K
