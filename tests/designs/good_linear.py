"""Tiny linear attention

A minimal, valid design used by the tests: elu+1 features and a causal prefix sum.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=1)  # (B, T, D, D)
        z = torch.cumsum(k, dim=1)
        y = torch.einsum("btd,btde->bte", q, kv) / (q * z).sum(-1, keepdim=True)
        return self.out(y)

    def init_state(self, batch):
        d = self.out.in_features
        return (torch.zeros(batch, d, d), torch.zeros(batch, d))

    def step(self, x_t, state):
        kv, z = state
        q, k, v = self.qkv(x_t).chunk(3, dim=-1)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = kv + k.unsqueeze(-1) * v.unsqueeze(-2)
        z = z + k
        y = torch.einsum("bd,bde->be", q, kv) / (q * z).sum(-1, keepdim=True)
        return self.out(y), (kv, z)
