"""DeltaNet + attention hybrid

DeltaNet layers interleaved with full softmax attention at a 3:1 ratio: the last layer is
attention and so is every fourth layer counting back from it (2 layers: delta, attention; 8 layers:
three delta layers then attention, twice). Hybrids of this kind (Yang et al. 2024, "Parallelizing
Linear Transformers with the Delta Rule over Sequence Length"; Gated DeltaNet's H1/H2 models; Jamba,
Samba) keep most layers linear-time with a fixed-size state while a few global attention layers
supply the exact retrieval that any fixed-size memory eventually loses. The DeltaNet layers follow
the DeltaNet baseline (short convolutions with silu, L2-normalized q and k, beta = sigmoid,
per-head RMSNorm); the attention layers use rotary embeddings. Attention layers keep a growing
cache, so no fixed-size step is provided.
"""

from einops import rearrange
from torch import Tensor, nn

from kernels.attention import RotaryEmbedding, softmax_attention
from kernels.conv import ShortConvolution
from kernels.delta_rule import chunk_delta_rule
from kernels.norm import RMSNorm, l2_normalize


class DeltaNet(nn.Module):
    """The delta rule S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, read by q_t."""

    def __init__(self, d_model: int, n_heads: int, conv_size: int = 4):
        super().__init__()
        self.n_heads = n_heads
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


class Attention(nn.Module):
    """Causal multi-head softmax attention with rotary embeddings."""

    def __init__(self, d_model: int, n_heads: int, rope_base: float = 10000.0):
        super().__init__()
        self.n_heads = n_heads
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
