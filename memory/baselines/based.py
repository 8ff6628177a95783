"""BASED

A BASED-style hybrid (Arora et al. 2024, "Simple linear attention language models balance the
recall-throughput tradeoff"): layers alternate between two cheap mixers that cover each other's
weakness. Even layers are linear attention with the second-order Taylor feature map
phi(x) = [1, x, x (x) x / sqrt(2)] (suitably scaled, so phi(q).phi(k) approximates exp(q.k/sqrt(d)))
on a small projected feature dimension (16 per head), with short causal convolutions on q, k, v and
the usual normalizing denominator: a fixed-size state with softmax-like global recall. Odd layers
are exact softmax attention over a sliding window of 32 tokens with rotary embeddings: precise
local modelling at linear cost. Neither layer has a fixed-size recurrent form for both kinds, so
no step is provided.
"""

import torch
from einops import rearrange
from torch import Tensor, nn

from kernels.attention import RotaryEmbedding, sliding_window_attention
from kernels.conv import ShortConvolution
from kernels.linear_attn import chunk_taylor_linear_attn


class TaylorLinearAttention(nn.Module):
    """Linear attention with the Taylor feature map on projected 16-dim queries and keys per head."""

    def __init__(
        self, d_model: int, n_heads: int, feature_dim: int = 16, conv_size: int = 4, eps: float = 1e-6
    ):
        super().__init__()
        self.n_heads = n_heads
        self.eps = eps
        self.q_proj = nn.Linear(d_model, n_heads * feature_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_heads * feature_dim, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.q_conv = ShortConvolution(n_heads * feature_dim, kernel_size=conv_size, activation=None)
        self.k_conv = ShortConvolution(n_heads * feature_dim, kernel_size=conv_size, activation=None)
        self.v_conv = ShortConvolution(d_model, kernel_size=conv_size, activation=None)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h f) -> b h t f", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h f) -> b h t f", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        # A ones column in v makes the recurrence also accumulate the denominator phi(q_t) . sum_s phi(k_s),
        # which is positive because 1 + s + s^2 / 2 > 0.
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # (B, H, T, D + 1)
        # Linear attention with the Taylor map (which holds the 1/sqrt(d) temperature), its kernel
        # computed from q . k inside each chunk rather than from the 273-wide features.
        o = chunk_taylor_linear_attn(q, k, v)
        o = o[..., :-1] / (o[..., -1:] + self.eps)
        return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))


class SlidingWindowAttention(nn.Module):
    """Causal softmax attention over the last ``window`` tokens, with rotary embeddings."""

    def __init__(self, d_model: int, n_heads: int, window: int = 32, rope_base: float = 10000.0):
        super().__init__()
        self.n_heads = n_heads
        self.window = window
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.rotary = RotaryEmbedding(d_model // n_heads, base=rope_base)

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        q, k = self.rotary(q, k)
        o = sliding_window_attention(q, k, v, self.window)  # (B, H, T, D)
        return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))


class Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        layer_idx: int,
        n_layers: int,
        feature_dim: int = 16,
        window: int = 32,
        **kw,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if layer_idx % 2 == 0:
            self.layer: nn.Module = TaylorLinearAttention(d_model, n_heads, feature_dim=feature_dim)
        else:
            self.layer = SlidingWindowAttention(d_model, n_heads, window=window)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)
