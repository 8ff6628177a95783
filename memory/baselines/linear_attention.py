"""Linear attention

Linear attention of Katharopoulos et al. 2020 ("Transformers are RNNs"): softmax(q k^T) is replaced
by the kernel phi(q) phi(k)^T with phi = elu + 1, so causal attention becomes a running sum of outer
products k_t v_t^T, a fixed-size state read by each query: linear time and a constant-memory
recurrent form. As in flash-linear-attention, the normalizing denominator is dropped in favour of a
per-head RMSNorm on the output, which trains more stably. It is the plain additive-memory baseline
with no forgetting, the floor that decay and delta-rule updates are meant to improve on.
"""

import torch
from einops import rearrange
from torch import Tensor, nn

from kernels.feature_maps import feature_map
from kernels.linear_attn import chunk_linear_attn, linear_attn_step
from kernels.norm import RMSNorm


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, layer_idx: int, n_layers: int, **kw):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_norm = RMSNorm(self.head_dim)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.feature_map = feature_map("elu_p1")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        o, _ = chunk_linear_attn(self.feature_map(q), self.feature_map(k), v)  # (B, H, T, D)
        o = self.o_norm(rearrange(o, "b h t d -> b t h d"))
        return self.o_proj(rearrange(o, "b t h d -> b t (h d)"))

    def init_state(self, batch: int) -> Tensor:
        """The key-value memory S: (B, H, K, V)."""
        weight = self.q_proj.weight
        return weight.new_zeros(batch, self.n_heads, self.head_dim, self.head_dim)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        q = rearrange(self.q_proj(x_t), "b (h d) -> b h d", h=self.n_heads)
        k = rearrange(self.k_proj(x_t), "b (h d) -> b h d", h=self.n_heads)
        v = rearrange(self.v_proj(x_t), "b (h d) -> b h d", h=self.n_heads)
        o, state = linear_attn_step(self.feature_map(q), self.feature_map(k), v, state)  # (B, H, D)
        return self.o_proj(torch.flatten(self.o_norm(o), 1)), state
