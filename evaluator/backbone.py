"""The shared backbone every design is trained in.

Embedding, then ``n_layers`` pre-norm blocks (RMSNorm -> short causal convolution -> Mixer ->
residual, optionally RMSNorm -> SwiGLU MLP -> residual), a final RMSNorm and an untied head.
The evaluator owns everything here so designs are compared on equal terms; only the Mixer comes
from the design.

The short depthwise convolution before each mixer follows the measured recipe of EVALUATION.md:
it hands every mixer the last few tokens, so recall tasks measure what a mixer can store and
retrieve rather than how fast it learns a local shift (without it, softmax attention needs far
more steps than a CPU tier affords to form an induction circuit). Designs may still add their own
convolutions on q, k and v; that remains a design choice.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kernels.conv import ShortConvolution


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)  # one fused op, forward and backward


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, mixer: nn.Module, d_model: int, mlp_ratio: float, token_conv: int):
        super().__init__()
        self.mixer_norm = RMSNorm(d_model)
        self.token_conv = ShortConvolution(d_model, token_conv, activation=None) if token_conv > 0 else nn.Identity()
        self.mixer = mixer
        self.mlp = None
        if mlp_ratio > 0:
            self.mlp_norm = RMSNorm(d_model)
            self.mlp = SwiGLU(d_model, int(mlp_ratio * d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.token_conv(self.mixer_norm(x)))
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x


class LanguageModel(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab)."""

    def __init__(self, mixer_cls: type, vocab: int, d_model: int, n_layers: int, n_heads: int,
                 mlp_ratio: float = 0.0, token_conv: int = 4, mixer_kwargs: dict | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.blocks = nn.ModuleList(
            Block(mixer_cls(d_model=d_model, n_heads=n_heads, layer_idx=i, n_layers=n_layers,
                            **(mixer_kwargs or {})), d_model, mlp_ratio, token_conv)
            for i in range(n_layers)
        )
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)
        for block in self.blocks:
            if block.mlp is not None:
                nn.init.normal_(block.mlp.gate_up.weight, std=0.02)
                nn.init.normal_(block.mlp.down.weight, std=0.02 / (2 * n_layers) ** 0.5)

    @property
    def mixers(self) -> list[nn.Module]:
        return [block.mixer for block in self.blocks]

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab); with ``positions``, a (B, T) mask, only those positions' logits (N, vocab),
        in row-major order: a task that scores a few positions (MQAR's queries) skips the head elsewhere."""
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        if positions is not None:
            x = x[positions]
        return self.head(self.norm(x))


@torch.no_grad()
def recurrent_logits(model: LanguageModel, tokens: torch.Tensor) -> torch.Tensor:
    """The model's logits computed one token at a time through each mixer's ``step`` (and the
    convolution's), which must equal ``model(tokens)`` for a design whose recurrent form is true."""
    return resume(model, tokens, None)[0]


def resume(model: LanguageModel, tokens: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
    """(logits, state): ``tokens`` stepped from ``state`` (None: the start of the sequence), and the model's
    state after them, ``{"convs": [...], "mixers": [...]}`` with one entry per block. A true recurrent form
    continues from that state in any process and still equals ``model`` over the whole sequence."""
    batch = tokens.shape[0]
    if state is None:
        state = {"convs": [b.token_conv.init_state(batch) if isinstance(b.token_conv, ShortConvolution) else None
                           for b in model.blocks],
                 "mixers": [b.mixer.init_state(batch) for b in model.blocks]}
    convs, states = list(state["convs"]), list(state["mixers"])
    outputs = []
    for t in range(tokens.shape[1]):
        x = model.embed(tokens[:, t])
        for i, block in enumerate(model.blocks):
            h = block.mixer_norm(x)
            if convs[i] is not None:
                h, convs[i] = block.token_conv.step(h, convs[i])
            y, states[i] = block.mixer.step(h, states[i])
            x = x + y
            if block.mlp is not None:
                x = x + block.mlp(block.mlp_norm(x))
        outputs.append(model.head(model.norm(x)))
    return torch.stack(outputs, dim=1), {"convs": convs, "mixers": states}
