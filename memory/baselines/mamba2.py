"""Mamba2

A Mamba2-style selective state-space layer (Dao & Gu 2024, "Transformers are SSMs"), in its
state-space-duality (SSD) form: one input projection yields the stream x, the gate z, the shared
input and output matrices B and C and a step size dt per head; a short causal convolution mixes
x, B and C locally; each head keeps the state S_t = exp(a_t) S_{t-1} + B_t (dt_t x_t)^T with the
scalar, data-dependent decay a_t = -exp(A_log) * softplus(dt_t + dt_bias), read as y_t = S_t^T C_t
plus a D skip connection, gated by silu(z) and then RMS-normalized, norm(y * silu(z)) (mamba_ssm's
and fla's norm_before_gate=False). It is linear attention with q = C, k = B and a scalar selective
forget gate per head; the expansion factor is 1 here to stay near the parameter count of an
attention layer. Two deviations from the paper's initialisation, for d_model 64 and a few hundred
steps: D starts at 0 (at this width the SSM path is ~400x smaller than D x at initialisation and
the skip drowns it), and A is drawn from [1/16, 1] instead of [1, 16], so that with dt in
[0.001, 0.1] every head starts with a memory of tens of tokens or more.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.conv import ShortConvolution
from kernels.norm import RMSNorm
from kernels.simple_gla import chunk_simple_gla, simple_gla_step


class Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        layer_idx: int,
        n_layers: int,
        expand: int = 1,
        d_state: int = 64,
        conv_size: int = 4,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        A_init_range: tuple[float, float] = (1.0 / 16, 1.0),
        **kw,
    ):
        super().__init__()
        d_inner = expand * d_model
        if d_inner % n_heads:
            raise ValueError(f"inner width ({d_inner}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.d_inner = d_inner
        self.d_state = min(d_state, d_model)  # a 64-wide state would dominate a tiny layer's parameters
        self.head_dim = d_inner // n_heads
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * self.d_state + n_heads, bias=False)
        self.conv = ShortConvolution(
            d_inner + 2 * self.d_state, kernel_size=conv_size, activation="silu", bias=True
        )
        self.A_log = nn.Parameter(torch.empty(n_heads))
        self.dt_bias = nn.Parameter(torch.empty(n_heads))
        self.D = nn.Parameter(torch.empty(n_heads))
        self.norm = RMSNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
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
        nn.init.zeros_(self.D)

    def _split(self, zxbcdt: Tensor, conv_out: Tensor) -> tuple[Tensor, ...]:
        """Heads of the conv output and the SSD inputs: q = C, k = B, v = x * dt, log-decay g."""
        x, B, C = torch.split(conv_out, [self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(zxbcdt[..., -self.n_heads :] + self.dt_bias)  # (..., H)
        g = -self.A_log.exp() * dt
        x = rearrange(x, "... (h p) -> ... h p", h=self.n_heads)
        return x, B, C, dt, g

    def forward(self, x: Tensor) -> Tensor:
        zxbcdt = self.in_proj(x)
        z = zxbcdt[..., : self.d_inner]
        xBC = self.conv(zxbcdt[..., self.d_inner : -self.n_heads])
        xs, B, C, dt, g = self._split(zxbcdt, xBC)  # xs: (B, T, H, P); B, C: (B, T, N); dt, g: (B, T, H)
        q = C[:, None].expand(-1, self.n_heads, -1, -1)  # (B, H, T, N), shared by all heads
        k = B[:, None].expand(-1, self.n_heads, -1, -1)
        v = rearrange(xs * dt[..., None], "b t h p -> b h t p")
        o, _ = chunk_simple_gla(q, k, v, rearrange(g, "b t h -> b h t"), scale=1.0)  # (B, H, T, P)
        y = rearrange(o, "b h t p -> b t h p") + xs * self.D[:, None]
        return self.out_proj(self.norm(rearrange(y, "b t h p -> b t (h p)") * F.silu(z)))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The conv window over (x, B, C) and the SSM state S: (B, H, N, P)."""
        weight = self.in_proj.weight
        return {
            "conv": self.conv.init_state(batch),
            "ssm": weight.new_zeros(batch, self.n_heads, self.d_state, self.head_dim),
        }

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        zxbcdt = self.in_proj(x_t)
        z = zxbcdt[..., : self.d_inner]
        xBC, conv_state = self.conv.step(zxbcdt[..., self.d_inner : -self.n_heads], state["conv"])
        xs, B, C, dt, g = self._split(zxbcdt, xBC)  # xs: (B, H, P); B, C: (B, N); dt, g: (B, H)
        q = C[:, None].expand(-1, self.n_heads, -1)  # (B, H, N)
        k = B[:, None].expand(-1, self.n_heads, -1)
        o, ssm_state = simple_gla_step(q, k, xs * dt[..., None], g, state["ssm"], scale=1.0)  # (B, H, P)
        y = o + xs * self.D[:, None]
        y = self.out_proj(self.norm(torch.flatten(y, 1) * F.silu(z)))
        return y, {"conv": conv_state, "ssm": ssm_state}
