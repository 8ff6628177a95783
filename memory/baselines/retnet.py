"""RetNet

Retention from RetNet (Sun et al. 2023, "Retentive Network: A Successor to Transformer for Large
Language Models"): linear attention whose state decays by a fixed factor per head,
S_t = gamma_h S_{t-1} + k_t v_t^T with gamma_h = 1 - 2^(-5 - h), so heads see exponentially
weighted windows of different lengths (multi-scale). Queries and keys carry rotary position
embeddings (the xPos-style relative positions of the paper), and the output passes a per-head
RMSNorm, following flash-linear-attention's MultiScaleRetention with use_output_gate=False: fla's
default swish output gate is left out, because at d_model 64 and a few hundred steps it keeps MQAR
near chance. The decay is not data dependent, which makes it the simplest forgetting baseline.
"""

import torch
from einops import rearrange
from torch import Tensor, nn

from kernels.attention import RotaryEmbedding
from kernels.norm import RMSNorm
from kernels.simple_gla import chunk_simple_gla, simple_gla_step


class Mixer(nn.Module):
    log_decay: Tensor

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
        self.o_norm = RMSNorm(self.head_dim)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.rotary = RotaryEmbedding(self.head_dim, base=rope_base)
        gamma = 1.0 - 2.0 ** (-5.0 - torch.arange(n_heads, dtype=torch.float32))
        self.register_buffer("log_decay", gamma.log(), persistent=False)  # (H,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_proj(x), "b t (h d) -> b h t d", h=self.n_heads)
        q, k = self.rotary(q, k)
        g = self.log_decay[None, :, None].expand(B, self.n_heads, T)  # (B, H, T)
        o, _ = chunk_simple_gla(q, k, v, g)  # (B, H, T, D)
        o = self.o_norm(rearrange(o, "b h t d -> b t h d"))
        return self.o_proj(rearrange(o, "b t h d -> b t (h d)"))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The retention state S: (B, H, K, V) and the number of tokens seen (for rotary)."""
        weight = self.q_proj.weight
        return {
            "S": weight.new_zeros(batch, self.n_heads, self.head_dim, self.head_dim),
            "position": torch.zeros((), dtype=torch.long, device=weight.device),
        }

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        B = x_t.shape[0]
        q = rearrange(self.q_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        k = rearrange(self.k_proj(x_t), "b (h d) -> b h 1 d", h=self.n_heads)
        v = rearrange(self.v_proj(x_t), "b (h d) -> b h d", h=self.n_heads)
        q, k = self.rotary(q, k, offset=state["position"])
        g = self.log_decay[None].expand(B, self.n_heads)  # (B, H)
        o, S = simple_gla_step(q[:, :, 0], k[:, :, 0], v, g, state["S"])  # (B, H, D)
        y = self.o_proj(torch.flatten(self.o_norm(o), 1))
        return y, {"S": S, "position": state["position"] + 1}
