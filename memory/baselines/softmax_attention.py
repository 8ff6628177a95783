"""Softmax attention

Multi-head causal softmax attention (Vaswani et al. 2017) with rotary position embeddings
(Su et al. 2021), the Transformer++ mixer that every linear-time design is measured against. Each
token can retrieve any earlier token exactly, which makes it the reference for associative recall,
at a cost quadratic in sequence length and with a key-value cache that grows with it: its recurrent
form steps over that cache, which is what classes its cost as quadratic.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.attention import RotaryEmbedding, softmax_attention


class Mixer(nn.Module):
    def __init__(
        self, d_model: int, n_heads: int, layer_idx: int, n_layers: int, rope_base: float = 10000.0, **kw
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.rotary = RotaryEmbedding(self.head_dim, base=rope_base)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        q, k = self.rotary(q, k)
        o = softmax_attention(q, k, v)  # (B, H, T, D)
        return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))

    def init_state(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """The key-value cache (empty at the start) and the number of tokens seen."""
        empty = self.q_proj.weight.new_zeros(batch, self.n_heads, 0, self.head_dim)
        return empty, empty.clone(), torch.zeros((), dtype=torch.long)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, tuple]:
        q = rearrange(self.q_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        k = rearrange(self.k_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        v = rearrange(self.v_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        keys, values, seen = state
        q, k = self.rotary(q, k, offset=seen)
        keys, values = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)
        o = F.scaled_dot_product_attention(q, keys, values)  # one query over the whole cache: no mask
        return self.o_proj(rearrange(o, "b h 1 d -> b (h d)")), (keys, values, seen + 1)
