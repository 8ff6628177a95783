"""PaTH attention

PaTH (Yang, Shen, Wen, Tan, Mishra, Ren, Panda & Kim 2025, "PaTH Attention: Position Encoding via
Accumulating Householder Transformations"): causal softmax attention whose position encoding, in
place of RoPE, is a product of data-dependent transforms. Token s carries H_s = I - beta_s w_s w_s^T
(w_s a unit vector, beta_s in (0, 2)), and query i scores key j through every transform between
them, q_i^T H_i ... H_{j+1} k_j. RoPE rotates by an angle fixed by the distance alone; here what
lies between two tokens decides how the key reaches the query, which lets attention track state
(parity, permutations, flip-flops) that RoPE and NoPE transformers cannot, and generalize past the
training length. The recurrent form is attention's key-value cache in which every new token
transforms all the keys already stored, so the cost is attention's: a cache that grows with the
sequence (quadratic class). As in flash-linear-attention's PaTHAttention with its defaults: q, k
and v full-width projections without RoPE or q/k norms; w from a low-rank projection (to 32, then to
d_model), a short convolution of width 3 with silu and an L2 norm per head; beta_t = 2 sigmoid(W_b
x_t + b) per head; scale head_dim^-0.5; the output projection; no forget gate (fla's
use_forget_gate = False). Departures: the w projection's rank is min(32, d_model), so a narrow layer
does not get a factorization wider than itself; linear weights start xavier-uniform with gain 2^-2.5
(the project's baselines' convention) instead of fla's normal(0, 0.02), the w convolution keeps
PyTorch's default (as the other baselines' convolutions do); the beta bias starts at 0 as in fla, so
beta starts near 1; training runs the blockwise PyTorch form of kernels.path instead of fla's Triton
kernels. It learns MQAR slowly at smoke: mqar_acc 0.14 at seed 0 (final loss 4.28), where the
softmax attention baseline (RoPE) reaches 0.99. At initialization beta is near 1 and w a different
direction at every token, so each transform projects a direction out of every earlier key and far
keys reach a query scrambled: content matching waits until the layer learns consistent w or small
beta. The same layer with the beta bias started at -4 (beta ~ 0.04, attention without position
encoding at first) reaches 0.75.
"""

import torch
from einops import rearrange
from torch import Tensor, nn

from kernels.conv import ShortConvolution
from kernels.norm import l2_normalize
from kernels.path import chunk_path_attn, empty_path_state, path_step


class Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        layer_idx: int,
        n_layers: int,
        w_rank: int = 32,
        w_conv_size: int = 3,
        **kw,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        rank = min(w_rank, d_model)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.w_proj = nn.Sequential(nn.Linear(d_model, rank, bias=False), nn.Linear(rank, d_model, bias=False))
        self.w_conv = ShortConvolution(d_model, kernel_size=w_conv_size, activation="silu")
        self.b_proj = nn.Linear(d_model, n_heads, bias=True)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _heads(self, x: Tensor) -> Tensor:
        return rearrange(x, "... (h d) -> ... h d", h=self.n_heads)

    def _beta(self, x: Tensor) -> Tensor:
        """beta in (0, 2) per head: H_t then has eigenvalues 1 and 1 - beta_t in (-1, 1), a reflection at 2."""
        return 2 * self.b_proj(x).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (rearrange(self._heads(proj(x)), "b t h d -> b h t d") for proj in (self.q_proj, self.k_proj,
                                                                                     self.v_proj))
        w = rearrange(l2_normalize(self._heads(self.w_conv(self.w_proj(x)))), "b t h d -> b h t d")
        beta = rearrange(self._beta(x), "b t h -> b h t")
        o, _ = chunk_path_attn(q, k, v, w, beta)  # (B, H, T, D)
        return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        """The w convolution's window and the key and value caches (B, H, n, D), empty at the start."""
        weight = self.q_proj.weight
        keys, values = empty_path_state(batch, self.n_heads, self.head_dim, self.head_dim, weight, dtype=weight.dtype)
        return {"w_conv": self.w_conv.init_state(batch), "keys": keys, "values": values}

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        q, k, v = (self._heads(proj(x_t)) for proj in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, D)
        w, w_conv = self.w_conv.step(self.w_proj(x_t), state["w_conv"])
        o, (keys, values) = path_step(q, k, v, l2_normalize(self._heads(w)), self._beta(x_t),
                                      (state["keys"], state["values"]))
        y = self.o_proj(torch.flatten(o, 1))
        return y, {"w_conv": w_conv, "keys": keys, "values": values}
