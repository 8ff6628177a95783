"""Kimi Delta Attention

Kimi Delta Attention (KDA), the recurrent layer of Moonshot AI's Kimi Linear (Kimi Team 2025, "Kimi
Linear: An Expressive, Efficient Attention Architecture"): Gated DeltaNet with the scalar forget gate
refined to one gate per key channel, S_t = (I - beta_t k_t k_t^T) diag(alpha_t) S_{t-1} + beta_t k_t v_t^T,
so that each head can keep some key dimensions for hundreds of tokens while clearing others at once, and
the delta rule still overwrites single associations. As in flash-linear-attention's KimiDeltaAttention:
q, k and v pass short convolutions with silu and q, k are L2-normalized per head; beta_t =
sigmoid(W_beta x_t) per head; the log-decay is g_t = -exp(A_log) * softplus(f_t + dt_bias) per key
channel, with f_t = W_f2 W_f1 x_t a low-rank projection of rank head_dim, A drawn from (1, 16) per head
and dt_bias a bias per channel; the value width equals the model width (fla's expand_v = 1). The
output passes a per-head RMSNorm without fla's sigmoid-gated norm (the project's baselines leave the
output gate out at this width: GLA, RetNet and Gated DeltaNet stayed near chance on MQAR with it).
fla starts dt_bias at 0, i.e. dt = softplus(0) = 0.69 and memories of about one token; here dt starts
log-uniform in [1e-4, 1e-2] per channel as in the Gated DeltaNet baseline, so with A in (1, 16) the
initial memories 1 / (A dt) span about 6 to 10^4 tokens (about 120 for A = 8.5 and dt = 1e-3, the
medians): in a few hundred steps Adam moves dt_bias by about one unit, too little to undo a fast
initial decay.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.conv import ShortConvolution
from kernels.kda import chunk_kda, kda_step
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
        A_init_range: tuple[float, float] = (1.0, 16.0),
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
        # the per-channel gate's low-rank projection (rank head_dim, as fla's f_proj)
        self.f_proj = nn.Sequential(nn.Linear(d_model, self.head_dim, bias=False),
                                    nn.Linear(self.head_dim, d_model, bias=False))
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.A_log = nn.Parameter(torch.empty(n_heads))
        self.dt_bias = nn.Parameter(torch.empty(d_model))  # one per key channel
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
        with torch.no_grad():
            self.A_log.uniform_(*self.A_init_range).log_()
            # dt log-uniform in [dt_min, dt_max] per channel; dt_bias is its inverse softplus.
            dt_min, dt_max = self.dt_range
            u = torch.rand(self.dt_bias.shape)
            dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=1e-4)
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Log-decay g <= 0, (..., H, D), and writing strength beta in (0, 1), (..., H)."""
        f = rearrange(self.f_proj(x) + self.dt_bias, "... (h d) -> ... h d", h=self.n_heads)
        g = -self.A_log.exp().unsqueeze(-1) * F.softplus(f)
        return g, self.b_proj(x).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b h t d", h=self.n_heads)
        q, k = l2_normalize(q), l2_normalize(k)
        g, beta = self._gates(x)
        o, _ = chunk_kda(q, k, v, rearrange(g, "b t h d -> b h t d"), rearrange(beta, "b t h -> b h t"))
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
        o, S = kda_step(q, k, v, g, beta, state["S"])  # (B, H, D)
        y = self.o_proj(torch.flatten(self.o_norm(o), 1))
        return y, {"q_conv": q_conv, "k_conv": k_conv, "v_conv": v_conv, "S": S}
