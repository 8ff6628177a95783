"""What every task shares: the model shape it trains, seeding and device placement."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from evaluator.backbone import LanguageModel


@dataclass(frozen=True)
class ModelShape:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    mlp_ratio: float = 0.0  # 0 = no MLP (the Zoology MQAR setting)
    token_conv: int = 4  # kernel of the backbone's short convolution before each mixer; 0 = none


def seed_for(seed: int, task: str, part: str) -> int:
    """A stable 63-bit seed per (evaluation seed, task, data split)."""
    digest = hashlib.sha256(f"{seed}/{task}/{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def build_model(mixer_cls: type, vocab: int, shape: ModelShape, seed: int, device: str) -> LanguageModel:
    torch.manual_seed(seed)
    model = LanguageModel(mixer_cls, vocab, shape.d_model, shape.n_layers, shape.n_heads, shape.mlp_ratio,
                          shape.token_conv)
    return model.to(device)


def to_device(pair: tuple[torch.Tensor, torch.Tensor], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return pair[0].to(device), pair[1].to(device)


class Sized:
    """What the trusted side reads off every task: its vocabulary and how many tokens it trains on."""

    @property
    def vocab(self) -> int:
        return self.spec.vocab

    @property
    def train_tokens(self) -> int:
        return self.optim.steps * self.optim.batch * self.seq_len
