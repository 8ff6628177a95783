"""Gated Slot Attention

Gated Slot Attention (Zhang, Yang et al. 2024, "Gated Slot Attention for Efficient Linear-Time
Sequence Modeling"): each head keeps M memory slots, a key row and a value row per slot, written as
moving averages under a data-dependent forget gate alpha_t per slot, Ks_t = diag(alpha_t) Ks_{t-1} +
(1 - alpha_t) k_t^T and Vs_t likewise with v_t, and read as o_t = Vs_t^T softmax(Ks_t q_t). The
softmax over a bounded set of slots makes the read sharp, like attention over M summary tokens,
where a linear read blurs every association stored in the state; the state stays 2 M d numbers
per head. Training runs two passes of gated linear attention joined by the softmax (kernels.gsa).
As in flash-linear-attention's GatedSlotAttention with its defaults: q, k and v use the full
model width (expand_k = expand_v = 1); q and k pass the swish feature map and v a silu; the
forget gate is log alpha_t = logsigmoid(W_f x_t) / 8 (gate_logit_normalizer 8, so alpha starts
near 0.92) from a full-rank projection to n_heads * M; the scores are not scaled (scale 1); the
output passes silu, then an RMSNorm over the whole width (eps 1e-5), then the output projection;
no short convolution and no output gate (fla's use_short_conv = use_output_gate = False).
M = num_slots defaults, as in fla, to the head dimension: 32 slots at d_model 64 and 2 heads
(4096 state numbers per layer, between DeltaNet's 2624 and Mamba2's 4672). Departure from fla:
weights start xavier-uniform with gain 2^-2.5 (std 0.022 at d_model 64, the project's baselines'
convention) instead of the fla model's normal(0, 0.02). At initialization the slots receive the
same writes and differ only through their gates, so they are near-copies and the softmax is nearly
uniform (top weight 0.031 of 32 slots); the layer learns slowly at first: smoke mqar_acc 0.07 at seed
0 (360 steps; variants with gate_logit_normalizer 1, 64 slots, or W_f drawn with gain 1 gave
0.01 / 0.08 / 0.09), while the smoke task's settings trained for 1500 steps (same optimizer and
schedule, stretched) reach 0.30, the loss falling from about step 450 on.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.gsa import chunk_gsa, gsa_step
from kernels.norm import RMSNorm


class Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        layer_idx: int,
        n_layers: int,
        num_slots: int | None = None,
        gate_logit_normalizer: float = 8.0,
        norm_eps: float = 1e-5,
        **kw,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.num_slots = self.head_dim if num_slots is None else num_slots
        self.gate_logit_normalizer = gate_logit_normalizer
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.f_proj = nn.Linear(d_model, n_heads * self.num_slots, bias=False)
        self.o_norm = RMSNorm(d_model, eps=norm_eps)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def _inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """q, k, v: (..., H, D); write strength s = 1 - alpha and log-gate g = log alpha: (..., H, M)."""
        q, k, v = (rearrange(F.silu(proj(x)), "... (h d) -> ... h d", h=self.n_heads)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        g = rearrange(F.logsigmoid(self.f_proj(x)) / self.gate_logit_normalizer, "... (h m) -> ... h m",
                      h=self.n_heads)
        return q, k, v, -torch.expm1(g), g

    def _output(self, o: Tensor) -> Tensor:
        """(..., H, D) -> (..., d_model): silu, RMSNorm over the whole width, projection."""
        return self.o_proj(self.o_norm(torch.flatten(F.silu(o), -2)))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v, s, g = (rearrange(t, "b t h d -> b h t d") for t in self._inputs(x))
        o, _ = chunk_gsa(q, k, v, s, g, scale=1.0)  # (B, H, T, D)
        return self._output(rearrange(o, "b h t d -> b t h d"))

    def init_state(self, batch: int) -> tuple[Tensor, Tensor]:
        """The key slots (B, H, M, D) and the value slots (B, H, M, D)."""
        zeros = self.q_proj.weight.new_zeros(batch, self.n_heads, self.num_slots, self.head_dim)
        return zeros, zeros.clone()

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        q, k, v, s, g = self._inputs(x_t)
        o, state = gsa_step(q, k, v, s, g, state, scale=1.0)  # (B, H, D)
        return self._output(o), state
