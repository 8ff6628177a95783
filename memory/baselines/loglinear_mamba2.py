"""Log-linear Mamba2

Log-linear attention (Guo, Yang, Goel, Xing, Dao & Kim 2025, "Log-Linear Attention") applied to
Mamba-2, as the paper does: everything of the Mamba2 baseline (memory/baselines/mamba2.py: the same
input projection to x, z, B, C and dt, the short convolution over x, B and C, the scalar selective
decay a_t = -exp(A_log) * softplus(dt_t + dt_bias), the D skip, norm(y * silu(z)) and the output
projection, with the same initialization) except that the single SSM state becomes O(log T) states.
The prefix of every token is split Fenwick-style into buckets of power-of-two sizes, finest next to
the token (`kernels.loglinear`); each bucket keeps its own decayed state, and the read-out mixes the
buckets with per-level weights lambda_t^(l) = softplus(L_l * w_l . x_t) >= 0 for each head (the
paper's parametrization: a projection of x_t per head and level, scaled by a learned L that starts
at 1). In matrix form y = (C B^T * M_decay * M_H)(dt x) with M_H[t, s] = lambda_t^(level(t, s)); with
every lambda equal to 1 it is the Mamba2 baseline exactly. The recurrent state grows by one K x V
slot per head each time the length passes a power of two, so step costs O(log T) per token; the
forward runs the chunked O(T log T) form. Departures: the baseline's own (expansion 1, d_state at
most d_model, D = 0 and A in [1/16, 1] at initialization); the lambda projection is a linear map of
its own beside the input projection (the paper appends its rows to in_proj; the map is the same, and
in_proj stays Mamba2's); 17 levels (enough for 2^16 tokens; coarser buckets share the last weight,
the paper keeps 15 for 16k); chunks of 32 tokens in PyTorch instead of the paper's Triton kernels
with chunks of 64. Cost class: at the CPU tiers' check shape its state after the training sequence (7
slots per head, 58882 numbers) outnumbers attention's keys and values over that sequence (16384), so
it is classed quadratic there: at that length it holds more than attention does. Its slots are
cheaper than a cache only at longer sequences or wider models.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kernels.conv import ShortConvolution
from kernels.loglinear import chunk_loglinear_attn, empty_fenwick_state, loglinear_step, num_levels
from kernels.norm import RMSNorm


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
        max_len: int = 1 << 16,
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
        self.n_levels = num_levels(max_len)
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * self.d_state + n_heads, bias=False)
        self.conv = ShortConvolution(
            d_inner + 2 * self.d_state, kernel_size=conv_size, activation="silu", bias=True
        )
        self.A_log = nn.Parameter(torch.empty(n_heads))
        self.dt_bias = nn.Parameter(torch.empty(n_heads))
        self.D = nn.Parameter(torch.empty(n_heads))
        self.norm = RMSNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.lambda_proj = nn.Linear(d_model, n_heads * self.n_levels, bias=False)
        self.L = nn.Parameter(torch.ones(n_heads, self.n_levels))
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
        nn.init.ones_(self.L)

    def level_weights(self, dl: Tensor) -> Tensor:
        """lambda >= 0 per head and level from the projection dl (..., H, levels)."""
        return F.softplus(self.L * dl)

    def _split(self, zxbcdt: Tensor, conv_out: Tensor) -> tuple[Tensor, ...]:
        """Heads of the conv output and the SSD inputs: q = C, k = B, v = x * dt, log-decay g."""
        x, B, C = torch.split(conv_out, [self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(zxbcdt[..., -self.n_heads :] + self.dt_bias)  # (..., H)
        g = -self.A_log.exp() * dt
        x = rearrange(x, "... (h p) -> ... h p", h=self.n_heads)
        return x, B, C, dt, g

    def _lambdas(self, x: Tensor) -> Tensor:
        return self.level_weights(rearrange(self.lambda_proj(x), "... (h l) -> ... h l", h=self.n_heads))

    def forward(self, x: Tensor) -> Tensor:
        zxbcdt = self.in_proj(x)
        z = zxbcdt[..., : self.d_inner]
        xBC = self.conv(zxbcdt[..., self.d_inner : -self.n_heads])
        xs, B, C, dt, g = self._split(zxbcdt, xBC)  # xs: (B, T, H, P); B, C: (B, T, N); dt, g: (B, T, H)
        q = C[:, None].expand(-1, self.n_heads, -1, -1)  # (B, H, T, N), shared by all heads
        k = B[:, None].expand(-1, self.n_heads, -1, -1)
        v = rearrange(xs * dt[..., None], "b t h p -> b h t p")
        lam = rearrange(self._lambdas(x), "b t h l -> b h t l")
        o = chunk_loglinear_attn(q, k, v, rearrange(g, "b t h -> b h t"), lam, scale=1.0)  # (B, H, T, P)
        y = rearrange(o, "b h t p -> b t h p") + xs * self.D[:, None]
        return self.out_proj(self.norm(rearrange(y, "b t h p -> b t (h p)") * F.silu(z)))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The conv window over (x, B, C), the Fenwick slots (B, H, J, N, P) (none yet; one more each
        time the length reaches a power of two) and the number of tokens seen, per row."""
        weight = self.in_proj.weight
        levels, tokens = empty_fenwick_state(batch, self.n_heads, self.d_state, self.head_dim, weight,
                                             dtype=weight.dtype)
        return {"conv": self.conv.init_state(batch), "levels": levels, "tokens": tokens}

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        zxbcdt = self.in_proj(x_t)
        z = zxbcdt[..., : self.d_inner]
        xBC, conv_state = self.conv.step(zxbcdt[..., self.d_inner : -self.n_heads], state["conv"])
        xs, B, C, dt, g = self._split(zxbcdt, xBC)  # xs: (B, H, P); B, C: (B, N); dt, g: (B, H)
        q = C[:, None].expand(-1, self.n_heads, -1)  # (B, H, N)
        k = B[:, None].expand(-1, self.n_heads, -1)
        o, (levels, tokens) = loglinear_step(q, k, xs * dt[..., None], g, self._lambdas(x_t),
                                             (state["levels"], state["tokens"]), scale=1.0)  # (B, H, P)
        y = o + xs * self.D[:, None]
        y = self.out_proj(self.norm(torch.flatten(y, 1) * F.silu(z)))
        return y, {"conv": conv_state, "levels": levels, "tokens": tokens}
