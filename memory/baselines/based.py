"""BASED

A BASED-style hybrid (Arora et al. 2024, "Simple linear attention language models balance the
recall-throughput tradeoff"): layers alternate between two cheap mixers that cover each other's
weakness. Even layers are linear attention with the second-order Taylor feature map
phi(x) = [1, x, x (x) x / sqrt(2)] (suitably scaled, so phi(q).phi(k) approximates exp(q.k/sqrt(d)))
on a small projected feature dimension (16 per head), with short causal convolutions on q, k, v; the
output passes a per-head RMSNorm instead of the normalizing denominator of the paper (as this
project's linear attention and fla's linear-attention layers do), which at d_model 64 and a few
hundred steps is what lets the layer learn MQAR: a fixed-size state with softmax-like global recall. Odd layers
are exact softmax attention over a sliding window of 32 tokens with rotary embeddings: precise
local modelling at linear cost. The recurrent form keeps, per Taylor layer, the conv windows and the
memory S = sum_t phi(k_t) v_t^T (only its 1 + K + K(K+1)/2 distinct rows: the rows of x_i x_j and
x_j x_i are equal), and per window layer the last window - 1 = 31 rotated keys and values: a bounded state, whose
cost class is windowed.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.attention import RotaryEmbedding, sliding_window_attention
from kernels.conv import ShortConvolution
from kernels.feature_maps import feature_map
from kernels.linear_attn import chunk_taylor_linear_attn, linear_attn_step
from kernels.norm import RMSNorm


class TaylorLinearAttention(nn.Module):
    """Linear attention with the Taylor feature map on projected 16-dim queries and keys per head."""

    def __init__(
        self, d_model: int, n_heads: int, feature_dim: int = 16, conv_size: int = 4, eps: float = 1e-6
    ):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.eps = eps  # unused since the denominator was replaced by o_norm; kept for the signature
        self.q_proj = nn.Linear(d_model, n_heads * feature_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_heads * feature_dim, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.q_conv = ShortConvolution(n_heads * feature_dim, kernel_size=conv_size, activation=None)
        self.k_conv = ShortConvolution(n_heads * feature_dim, kernel_size=conv_size, activation=None)
        self.v_conv = ShortConvolution(d_model, kernel_size=conv_size, activation=None)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_norm = RMSNorm(d_model // n_heads)
        # The step's feature map is the one chunk_taylor_linear_attn carries its state in. Its features
        # 1 + F + (i, j) hold k_i k_j and k_j k_i alike, so those rows of S are equal: the state keeps
        # the 1 + F + F(F+1)/2 distinct rows and a query counts each off-diagonal pair twice.
        self.phi = feature_map("taylor2")
        i, j = torch.triu_indices(feature_dim, feature_dim)
        keep = torch.cat([torch.arange(1 + feature_dim), 1 + feature_dim + i * feature_dim + j])
        weight = torch.cat([torch.ones(1 + feature_dim), torch.where(i == j, 1.0, 2.0)])
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("pair_weight", weight, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h f) -> b h t f", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h f) -> b h t f", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        # Linear attention with the Taylor map (which holds the 1/sqrt(d) temperature), its kernel
        # computed from q . k inside each chunk rather than from the 273-wide features.
        o = self.o_norm(chunk_taylor_linear_attn(q, k, v))  # per-head RMSNorm instead of the denominator
        return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The three conv windows and the memory S over phi's distinct features: (B, H, 1 + F + F(F+1)/2, D)."""
        return {
            "q_conv": self.q_conv.init_state(batch),
            "k_conv": self.k_conv.init_state(batch),
            "v_conv": self.v_conv.init_state(batch),
            "S": self.q_proj.weight.new_zeros(batch, self.n_heads, self.keep.numel(), self.head_dim),
        }

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        q, q_conv = self.q_conv.step(self.q_proj(x_t), state["q_conv"])
        k, k_conv = self.k_conv.step(self.k_proj(x_t), state["k_conv"])
        v, v_conv = self.v_conv.step(self.v_proj(x_t), state["v_conv"])
        q = rearrange(q, "b (h f) -> b h f", h=self.n_heads)
        k = rearrange(k, "b (h f) -> b h f", h=self.n_heads)
        v = rearrange(v, "b (h d) -> b h d", h=self.n_heads)
        phi_q = self.phi(q)[..., self.keep] * self.pair_weight
        phi_k = self.phi(k)[..., self.keep]
        o, S = linear_attn_step(phi_q, phi_k, v, state["S"], scale=1.0)  # (B, H, D); the map holds the scale
        y = self.o_proj(torch.flatten(self.o_norm(o), 1))
        return y, {"q_conv": q_conv, "k_conv": k_conv, "v_conv": v_conv, "S": S}


class SlidingWindowAttention(nn.Module):
    """Causal softmax attention over the last ``window`` tokens, with rotary embeddings."""

    def __init__(self, d_model: int, n_heads: int, window: int = 32, rope_base: float = 10000.0):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
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

    def init_state(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """A cache of the last ``window - 1`` keys (rotated at their positions) and values, empty at the
        start, and the number of tokens seen."""
        empty = self.q_proj.weight.new_zeros(batch, self.n_heads, 0, self.head_dim)
        return empty, empty.clone(), torch.zeros((), dtype=torch.long)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, tuple]:
        q = rearrange(self.q_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        k = rearrange(self.k_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        v = rearrange(self.v_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        keys, values, seen = state
        q, k = self.rotary(q, k, offset=seen)
        keys, values = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)  # at most `window` tokens
        o = F.scaled_dot_product_attention(q, keys, values)  # one query over the window: no mask
        drop = max(keys.shape[2] - (self.window - 1), 0)  # the next token sees only the last window - 1
        state = (keys[:, :, drop:], values[:, :, drop:], seen + 1)
        return self.o_proj(rearrange(o, "b h 1 d -> b (h d)")), state


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

    def init_state(self, batch: int):
        return self.layer.init_state(batch)

    def step(self, x_t: Tensor, state):
        return self.layer.step(x_t, state)
