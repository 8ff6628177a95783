"""DeltaNet + attention hybrid

DeltaNet layers interleaved with full softmax attention at a 3:1 ratio: the last layer is
attention and so is every fourth layer counting back from it (2 layers: delta, attention; 8 layers:
three delta layers then attention, twice). Hybrids of this kind (Yang et al. 2024, "Parallelizing
Linear Transformers with the Delta Rule over Sequence Length"; Gated DeltaNet's H1/H2 models; Jamba,
Samba) keep most layers linear-time with a fixed-size state while a few global attention layers
supply the exact retrieval that any fixed-size memory eventually loses. The DeltaNet layers follow
the DeltaNet baseline (short convolutions with silu, L2-normalized q and k, beta = sigmoid,
per-head RMSNorm); the attention layers use rotary embeddings. The recurrent form steps the delta
layers' fixed-size memory and the attention layers' key-value cache, which grows with the sequence:
the hybrid's cost class is quadratic, its cache kept in the attention layers only.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.attention import RotaryEmbedding, softmax_attention
from kernels.conv import ShortConvolution
from kernels.delta_rule import chunk_delta_rule, delta_rule_step
from kernels.norm import RMSNorm, l2_normalize


class DeltaNet(nn.Module):
    """The delta rule S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, read by q_t."""

    def __init__(self, d_model: int, n_heads: int, conv_size: int = 4):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.q_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.k_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.v_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.o_norm = RMSNorm(d_model // n_heads)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        q, k = l2_normalize(q), l2_normalize(k)
        beta = rearrange(self.b_proj(x).sigmoid(), "b t h -> b h t")
        o, _ = chunk_delta_rule(q, k, v, beta)  # (B, H, T, D)
        o = self.o_norm(rearrange(o, "b h t d -> b t h d"))
        return self.o_proj(rearrange(o, "b t h d -> b t (h d)"))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The three conv windows and the fast-weight memory S: (B, H, K, V)."""
        return {
            "q_conv": self.q_conv.init_state(batch),
            "k_conv": self.k_conv.init_state(batch),
            "v_conv": self.v_conv.init_state(batch),
            "S": self.q_proj.weight.new_zeros(batch, self.n_heads, self.head_dim, self.head_dim),
        }

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        q, q_conv = self.q_conv.step(self.q_proj(x_t), state["q_conv"])
        k, k_conv = self.k_conv.step(self.k_proj(x_t), state["k_conv"])
        v, v_conv = self.v_conv.step(self.v_proj(x_t), state["v_conv"])
        q = l2_normalize(rearrange(q, "b (h d) -> b h d", h=self.n_heads))
        k = l2_normalize(rearrange(k, "b (h d) -> b h d", h=self.n_heads))
        v = rearrange(v, "b (h d) -> b h d", h=self.n_heads)
        o, S = delta_rule_step(q, k, v, self.b_proj(x_t).sigmoid(), state["S"])  # (B, H, D)
        y = self.o_proj(torch.flatten(self.o_norm(o), 1))
        return y, {"q_conv": q_conv, "k_conv": k_conv, "v_conv": v_conv, "S": S}


class Attention(nn.Module):
    """Causal multi-head softmax attention with rotary embeddings."""

    def __init__(self, d_model: int, n_heads: int, rope_base: float = 10000.0):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
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


def is_attention_layer(layer_idx: int, n_layers: int, every: int = 4) -> bool:
    """The last layer, and every ``every``-th layer counting back from it, is attention."""
    return (n_layers - 1 - layer_idx) % every == 0


class Mixer(nn.Module):
    def __init__(
        self, d_model: int, n_heads: int, layer_idx: int, n_layers: int, attention_every: int = 4, **kw
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if is_attention_layer(layer_idx, n_layers, attention_every):
            self.layer: nn.Module = Attention(d_model, n_heads)
        else:
            self.layer = DeltaNet(d_model, n_heads)
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
