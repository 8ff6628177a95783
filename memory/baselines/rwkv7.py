"""RWKV-7

RWKV-7 "Goose" (Peng et al. 2025, "RWKV-7 'Goose' with Expressive Dynamic State Evolution"): a
generalized delta rule whose state transition is a per-channel decay plus a rank-one removal,
S_t = (diag(w_t) - (a_t * kk_t) kk_t^T) S_{t-1} + k~_t v_t^T (RWKV's row-convention formula, transposed
so that S is keys x values and o_t = S_t^T r_t). Each token erases what the memory holds along a
normalized removal key kk_t = normalize(k_t * k_k), channel by channel at a learned in-context
learning rate a_t = sigmoid(low-rank(x_t)), then writes v_t under the replacement key
k~_t = k_t * (1 + (a_t - 1) * k_a); the decay w_t = exp(-e^-0.5 * sigmoid(d_t)) in (0.545, 1) comes from
a tanh low-rank projection, and a "bonus" (r_t . (k~_t * r_k)) v_t, added after the output norm as
in fla, passes the current token on directly. As in RWKV-7, only the removal key is normalized: the
receptance r_t (the query) and k~_t are not, and the recurrence runs with scale 1.
Following flash-linear-attention's RWKV7Attention, with these simplifications for a small,
self-contained layer: the token shift (a learned per-channel lerp between x_t and x_{t-1} before every
projection) is replaced by short causal convolutions with silu on r, k and v, as in the project's
other delta-rule baselines (the decay and learning-rate projections read x_t, to which the backbone's
own token convolution has already added the last tokens); the value residual (mixing the first
layer's values into later layers) is left out, since a mixer sees no other layer; the sigmoid output
gate is left out (the project's baselines leave output gates out at this width: GLA, RetNet and Gated
DeltaNet stayed near chance on MQAR with them); the per-head GroupNorm is a per-head RMSNorm; the
low-rank width is fla's (32 at these widths) but at most d_model / 2, to stay near an attention
layer's parameter count at small widths; linear weights start as in the other baselines
(Xavier-uniform, gain 2^-2.5) rather than fla's zero or orthogonal starts, which would leave some
parameters without gradient at initialization. The decay biases keep fla's layout (slow to fast
across channels, a zigzag within each head) shifted 2 units lower (decay_shift), so that the median
channel starts with a memory of about 150 tokens in the first layer and 600 in the last (1 / rate at
d_model 64, two layers) instead of fla's 20 and 80: in a few hundred steps Adam moves these biases by
about one unit, too little to undo a fast initial decay (the reasoning of the Gated DeltaNet baseline).
The chunked kernel is told the decay's bound, a log-decay above -e^-0.5 per step, so its intra-chunk products
run in float32 rather than in the float64 an unbounded decay needs (``kernels.utils.product_dtype``).
"""

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from kernels.conv import ShortConvolution
from kernels.norm import RMSNorm, l2_normalize
from kernels.rwkv7 import chunk_rwkv7, rwkv7_step

DECAY_SCALE = math.exp(-0.5)  # the log-decay is -e^-0.5 * sigmoid(.), in (-0.607, 0)


class Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        layer_idx: int,
        n_layers: int,
        conv_size: int = 4,
        low_rank_dim: int | None = None,
        decay_shift: float = -2.0,
        **kw,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        if low_rank_dim is None:  # fla's width for the decay and learning-rate projections, capped at d/2
            fla = max(32, round(2.5 * d_model**0.5 * (self.head_dim / 64) / 32) * 32)
            low_rank_dim = max(1, min(fla, d_model // 2))
        self.r_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.w_lora = nn.Sequential(nn.Linear(d_model, low_rank_dim, bias=False), nn.Tanh(),
                                    nn.Linear(low_rank_dim, d_model, bias=True))
        self.a_lora = nn.Sequential(nn.Linear(d_model, low_rank_dim, bias=False),
                                    nn.Linear(low_rank_dim, d_model, bias=True))
        self.k_k = nn.Parameter(torch.empty(d_model))  # removal key = normalize(k * k_k)
        self.k_a = nn.Parameter(torch.empty(d_model))  # replacement key = k * (1 + (a - 1) * k_a)
        self.r_k = nn.Parameter(torch.empty(n_heads, self.head_dim))  # the bonus term's weights
        self.r_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.k_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.v_conv = ShortConvolution(d_model, kernel_size=conv_size, activation="silu")
        self.o_norm = RMSNorm(self.head_dim)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.layer_ratio = layer_idx / (n_layers - 1) if n_layers > 1 else 0.0
        self.decay_shift = decay_shift
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)
        d, D = self.k_k.numel(), self.head_dim
        n = torch.arange(d, dtype=torch.float32)
        linear = n / max(d - 1, 1) - 0.5  # -0.5 .. 0.5 across the layer
        zigzag = ((n % D) - (D - 1) / 2) / max((D - 1) / 2, 1)  # -1 .. 1 within each head
        zigzag = zigzag * zigzag.abs()
        # fla's decay layout: slow channels first, fast ones last, the curve bent towards slow in later layers
        slow_to_fast = -6 + 6 * (n / max(d - 1, 1)) ** (1 + self.layer_ratio**0.3)
        with torch.no_grad():
            self.w_lora[2].bias.copy_(slow_to_fast + 0.5 + 2.5 * zigzag + self.decay_shift)
            self.a_lora[1].bias.copy_(-0.19 + 0.3 * zigzag + 0.4 * linear)
            self.k_k.copy_(0.71 - 0.1 * linear)
            self.k_a.fill_(1.02)
            self.r_k.fill_(-0.04)

    def _heads(self, x: Tensor) -> Tensor:
        return rearrange(x, "... (h d) -> ... h d", h=self.n_heads)

    def _mix(self, x: Tensor, r: Tensor, k: Tensor, v: Tensor):
        """Per-head inputs of the recurrence, (..., H, D) each: r, k~, v, log-decay g, kk, a, and the bonus."""
        g = self._heads(-DECAY_SCALE * self.w_lora(x).sigmoid())
        a = self.a_lora(x).sigmoid()
        kk = l2_normalize(self._heads(k * self.k_k))
        k = k * (1 + (a - 1) * self.k_a)
        r, k, v, a = (self._heads(t) for t in (r, k, v, a))
        bonus = (r * k * self.r_k).sum(-1, keepdim=True) * v
        return r, k, v, g, kk, a, bonus

    def forward(self, x: Tensor) -> Tensor:
        r, k, v, g, kk, a, bonus = self._mix(x, self.r_conv(self.r_proj(x)), self.k_conv(self.k_proj(x)),
                                             self.v_conv(self.v_proj(x)))
        # the log-decay is > -DECAY_SCALE by construction: the kernel's products then need no float64
        o, _ = chunk_rwkv7(*(rearrange(t, "b t h d -> b h t d") for t in (r, k, v, g, kk, a)), scale=1.0,
                           log_decay_floor=-DECAY_SCALE)
        o = self.o_norm(rearrange(o, "b h t d -> b t h d")) + bonus
        return self.o_proj(rearrange(o, "b t h d -> b t (h d)"))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The three conv windows and the memory S: (B, H, K, V)."""
        return {
            "r_conv": self.r_conv.init_state(batch),
            "k_conv": self.k_conv.init_state(batch),
            "v_conv": self.v_conv.init_state(batch),
            "S": self.r_proj.weight.new_zeros(batch, self.n_heads, self.head_dim, self.head_dim),
        }

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        r, r_conv = self.r_conv.step(self.r_proj(x_t), state["r_conv"])
        k, k_conv = self.k_conv.step(self.k_proj(x_t), state["k_conv"])
        v, v_conv = self.v_conv.step(self.v_proj(x_t), state["v_conv"])
        r, k, v, g, kk, a, bonus = self._mix(x_t, r, k, v)
        o, S = rwkv7_step(r, k, v, g, kk, a, state["S"], scale=1.0)  # (B, H, D)
        y = self.o_proj(torch.flatten(self.o_norm(o) + bonus, 1))
        return y, {"r_conv": r_conv, "k_conv": k_conv, "v_conv": v_conv, "S": S}
