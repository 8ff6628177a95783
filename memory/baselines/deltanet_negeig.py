"""DeltaNet with negative eigenvalues

DeltaNet whose writing strength ranges over (0, 2) instead of (0, 1): beta_t = 2 sigmoid(W_beta x_t),
following Grazzi et al. 2024 ("Unlocking State Tracking in Linear RNNs Through Negative
Eigenvalues"). The transition I - beta_t k_t k_t^T of the delta rule (Schlag et al. 2021; parallel
form of Yang et al. 2024) then has the eigenvalue 1 - beta_t in (-1, 1) along k_t, so it can
reflect as well as shrink the memory: a linear RNN with only non-negative eigenvalues cannot even
track parity, while this one can, at no extra cost. Everything else matches the DeltaNet baseline:
short convolutions with silu on q, k, v, L2-normalized q and k, per-head RMSNorm on the output.
"""

import torch
from einops import rearrange
from torch import Tensor, nn

from kernels.conv import ShortConvolution
from kernels.delta_rule import chunk_delta_rule, delta_rule_step
from kernels.norm import RMSNorm, l2_normalize


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, layer_idx: int, n_layers: int, conv_size: int = 4, **kw):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.q_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.k_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.v_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.o_norm = RMSNorm(self.head_dim)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def _beta(self, x: Tensor) -> Tensor:
        # Twice the sigmoid: beta in (0, 2) lets I - beta k k^T have a negative eigenvalue.
        return 2.0 * self.b_proj(x).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        q, k = l2_normalize(q), l2_normalize(k)
        beta = rearrange(self._beta(x), "b t h -> b h t")
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
        o, S = delta_rule_step(q, k, v, self._beta(x_t), state["S"])  # (B, H, D)
        y = self.o_proj(torch.flatten(self.o_norm(o), 1))
        return y, {"q_conv": q_conv, "k_conv": k_conv, "v_conv": v_conv, "S": S}
