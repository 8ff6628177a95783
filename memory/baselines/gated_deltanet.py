"""Gated DeltaNet

Gated DeltaNet (Yang et al. 2024, "Gated Delta Networks: Improving Mamba2 with Delta Rule"): the
delta rule of DeltaNet combined with Mamba2's scalar, data-dependent forget gate,
S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, with alpha_t = exp(g_t),
g_t = -exp(A_log) * softplus(W_a x_t + dt_bias) per head and beta_t = sigmoid(W_beta x_t). The gate
clears the memory quickly when the context changes, while the delta rule edits individual
associations precisely. As in flash-linear-attention's GatedDeltaNet layer, q, k and v pass short
convolutions with silu, q and k are L2-normalized, and the output passes a per-head RMSNorm without
fla's default swish output gate (use_gate=False, as in Zoology's MQAR configuration of this layer);
the value width equals the model width here (fla expands it 2x) to stay near the parameter count of
an attention layer. The step size dt starts log-uniform in [1e-4, 1e-2] rather than fla's
[1e-3, 1e-1] (A is drawn from (0, 16), as fla draws it), so that the initial memories span tens to
thousands of tokens: in a few hundred steps at lr 3e-3, Adam moves dt_bias and A_log by about one
unit, too little to undo a fast initial decay.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.conv import ShortConvolution
from kernels.gated_delta_rule import chunk_gated_delta_rule, gated_delta_rule_step
from kernels.norm import RMSNorm, l2_normalize


class Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        layer_idx: int,
        n_layers: int,
        conv_size: int = 4,
        dt_min: float = 0.0001,
        dt_max: float = 0.01,
        A_init_range: tuple[float, float] = (0.0, 16.0),
        **kw,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.a_proj = nn.Linear(d_model, n_heads, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.A_log = nn.Parameter(torch.empty(n_heads))
        self.dt_bias = nn.Parameter(torch.empty(n_heads))
        self.q_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.k_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.v_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.o_norm = RMSNorm(self.head_dim)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.dt_range = (dt_min, dt_max)
        self.A_init_range = A_init_range
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)
        nn.init.uniform_(self.A_log, *self.A_init_range)
        with torch.no_grad():
            self.A_log.log_()
            # dt log-uniform in [dt_min, dt_max]; dt_bias is its inverse softplus, so softplus(dt_bias) = dt.
            dt_min, dt_max = self.dt_range
            u = torch.rand(self.n_heads)
            dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=1e-4)
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Log-decay g <= 0 and writing strength beta in (0, 1), each (..., H)."""
        g = -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)
        return g, self.b_proj(x).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        q, k = l2_normalize(q), l2_normalize(k)
        g, beta = (rearrange(t, "b t h -> b h t") for t in self._gates(x))
        o, _ = chunk_gated_delta_rule(q, k, v, g, beta)  # (B, H, T, D)
        o = self.o_norm(rearrange(o, "b h t d -> b t h d"))
        return self.o_proj(rearrange(o, "b t h d -> b t (h d)"))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The three conv windows and the memory S: (B, H, K, V)."""
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
        g, beta = self._gates(x_t)
        o, S = gated_delta_rule_step(q, k, v, g, beta, state["S"])  # (B, H, D)
        y = self.o_proj(torch.flatten(self.o_norm(o), 1))
        return y, {"q_conv": q_conv, "k_conv": k_conv, "v_conv": v_conv, "S": S}
