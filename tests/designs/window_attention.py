"""Windowed attention for the cost tests

Causal softmax attention over the last WINDOW tokens (0: all of them), with a recurrent form.
"""

import torch
import torch.nn as nn

WINDOW = 0
# "grow": a cache that grows to the window; "buffer": the window allocated up front; "hidden": the cache kept
# in the module; "attribute": the cache hung on the state tensor as a Python attribute
CACHE = "grow"


class Mixer(nn.Module):
    def __init__(self, d_model, n_heads, layer_idx, n_layers, **kw):
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.hidden = []

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        t = x.shape[1]
        i = torch.arange(t)
        allowed = i[None, :] <= i[:, None]
        if WINDOW:
            allowed = allowed & (i[:, None] - i[None, :] < WINDOW)
        scores = (q @ k.transpose(1, 2)) / q.shape[-1] ** 0.5
        scores = scores.masked_fill(~allowed, float("-inf"))
        return self.out(torch.softmax(scores, dim=-1) @ v)

    def init_state(self, batch):
        d = self.out.in_features
        self.hidden = []
        if CACHE == "buffer":
            return (torch.full((batch, WINDOW, d), 1e-3), torch.full((batch, WINDOW, d), 1e-3),
                    torch.full((batch, WINDOW), -1e9))
        if CACHE == "hidden":
            return torch.ones(batch, 1)
        if CACHE == "attribute":
            state = torch.ones(batch, 1)
            state.cache = []
            return state
        return (torch.zeros(batch, 0, d), torch.zeros(batch, 0, d))

    def _attend(self, q, keys, values, bias=None):
        scores = (keys @ q.unsqueeze(-1)).squeeze(-1) / q.shape[-1] ** 0.5
        if bias is not None:
            scores = scores + bias
        return self.out((torch.softmax(scores, dim=-1).unsqueeze(-1) * values).sum(1))

    def step(self, x_t, state):
        q, k, v = self.qkv(x_t).chunk(3, dim=-1)
        if CACHE == "hidden":
            self.hidden.append((k, v))
            keys = torch.stack([kk for kk, _ in self.hidden], 1)
            values = torch.stack([vv for _, vv in self.hidden], 1)
            return self._attend(q, keys, values), state
        if CACHE == "attribute":
            cache = getattr(state, "cache", [])  # in-process the attribute rides along; across processes it is gone
            cache.append((k, v))
            keys = torch.stack([kk for kk, _ in cache], 1)
            values = torch.stack([vv for _, vv in cache], 1)
            after = state.clone()
            after.cache = cache
            return self._attend(q, keys, values), after
        if CACHE == "buffer":
            keys, values, bias = state
            keys = torch.cat([keys[:, 1:], k.unsqueeze(1)], 1)
            values = torch.cat([values[:, 1:], v.unsqueeze(1)], 1)
            bias = torch.cat([bias[:, 1:], torch.zeros_like(bias[:, :1])], 1)
            return self._attend(q, keys, values, bias), (keys, values, bias)
        keys, values = state
        keys = torch.cat([keys, k.unsqueeze(1)], 1)
        values = torch.cat([values, v.unsqueeze(1)], 1)
        if WINDOW:
            keys, values = keys[:, -WINDOW:], values[:, -WINDOW:]
        return self._attend(q, keys, values), (keys, values)
