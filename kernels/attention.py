"""Causal softmax attention (full and sliding-window) and rotary position embeddings.

Layout is head-first: q, k: (B, H, T, K), v: (B, H, T, V); outputs (B, H, T, V).
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """Causal softmax attention; ``scale`` defaults to K ** -0.5."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)


def sliding_window_attention(
    q: Tensor, k: Tensor, v: Tensor, window: int, scale: float | None = None
) -> Tensor:
    """Causal softmax attention where position t sees positions t - window + 1 .. t.

    The sequence is cut into blocks of ``window`` queries; each block attends to its own keys and the
    previous block's, so cost and memory grow as T * window rather than T^2.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    B, H, T, K = q.shape
    if window >= T:
        return softmax_attention(q, k, v, scale)
    scale = K**-0.5 if scale is None else scale
    W = window
    n = -(-T // W)
    pad = n * W - T
    # One zero block in front gives block 0 a "previous block"; padding at the end completes the last.
    q = F.pad(q, (0, 0, 0, pad))
    k = F.pad(k, (0, 0, W, pad))
    v = F.pad(v, (0, 0, W, pad))
    q = rearrange(q, "b h (n w) d -> b h n w d", w=W)
    k = rearrange(k, "b h (n w) d -> b h n w d", w=W)
    v = rearrange(v, "b h (n w) d -> b h n w d", w=W)
    k = torch.cat([k[:, :, :-1], k[:, :, 1:]], dim=3)  # (B, H, n, 2W, K): previous block, own block
    v = torch.cat([v[:, :, :-1], v[:, :, 1:]], dim=3)  # (B, H, n, 2W, V)

    scores = torch.einsum("bhnqd,bhnkd->bhnqk", q, k) * scale  # (B, H, n, W, 2W)
    # Query i of block b is at position b*W + i; key j of the window is at (b-1)*W + j.
    i = torch.arange(W, device=q.device)[:, None]
    j = torch.arange(2 * W, device=q.device)[None, :]
    distance = i + W - j
    visible = (distance >= 0) & (distance < W)  # (W, 2W)
    in_sequence = (torch.arange(n, device=q.device)[:, None, None] * W + j - W) >= 0  # (n, 1, 2W)
    scores = scores.masked_fill(~(visible & in_sequence), float("-inf"))
    o = torch.einsum("bhnqk,bhnkd->bhnqd", scores.softmax(dim=-1), v)
    return rearrange(o, "b h n w d -> b h (n w) d")[:, :, :T]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021), rotating half-split pairs (dim i with dim i + R/2).

    ``forward(q, k, offset)`` treats the T tokens as positions offset .. offset + T - 1, so a recurrent
    step passes the number of tokens already seen. ``offset`` may be an int or a 0-dim integer tensor.
    An odd head dimension leaves its last channel unrotated.
    """

    inv_freq: Tensor

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim = head_dim
        self.rotary_dim = head_dim - head_dim % 2
        self.base = base
        inv_freq = 1.0 / base ** (torch.arange(0, self.rotary_dim, 2, dtype=torch.float32) / self.rotary_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, q: Tensor, k: Tensor, offset: int | Tensor = 0) -> tuple[Tensor, Tensor]:
        T = q.shape[-2]
        positions = torch.arange(T, device=q.device, dtype=torch.float32) + offset
        angles = positions[:, None] * self.inv_freq[None, :]  # (T, R/2)
        cos, sin = angles.cos(), angles.sin()
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin)

    def _rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        R = self.rotary_dim
        x1, x2, rest = x[..., : R // 2], x[..., R // 2 : R], x[..., R:]
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)
