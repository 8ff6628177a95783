"""Parity as a state-tracking probe (Grazzi et al., 2024).

Inputs are bits (tokens 0 and 1) after a BOS token (2); the label at every bit is the parity of
the bits so far. Sequences have random lengths in [min_len, max_len] and are padded with BOS
(ignored labels) to max_len + 1. Diagonal, non-negative state transitions cannot solve it;
a delta rule whose transition has negative eigenvalues can.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluator.tasks.common import ModelShape, build_model, seed_for, to_device
from evaluator.train import IGNORE, Optim, accuracy, train

BOS = 2


@dataclass(frozen=True)
class ParitySpec:
    min_len: int = 3
    max_len: int = 40
    vocab: int = 3


def generate(spec: ParitySpec, n: int, generator: torch.Generator,
             min_len: int | None = None, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples: (inputs, labels), both (n, max_len + 1) int64."""
    lo, hi = min_len or spec.min_len, max_len or spec.max_len
    lengths = torch.randint(lo, hi + 1, (n,), generator=generator)
    bits = torch.randint(0, 2, (n, hi), generator=generator)
    valid = torch.arange(hi).expand(n, hi) < lengths[:, None]
    bits = torch.where(valid, bits, torch.full_like(bits, BOS))
    parity = torch.cumsum(torch.where(valid, bits, 0), dim=1) % 2
    inputs = torch.cat([torch.full((n, 1), BOS, dtype=torch.long), bits], dim=1)
    labels = torch.cat([torch.full((n, 1), IGNORE, dtype=torch.long),
                        torch.where(valid, parity, torch.full_like(parity, IGNORE))], dim=1)
    return inputs, labels


@dataclass(frozen=True)
class Parity:
    """Train a fresh backbone on parity; report per-bit accuracy at training lengths and beyond."""

    spec: ParitySpec
    model: ModelShape
    optim: Optim
    n_test: int = 512
    long_len: int = 80  # extrapolation probe: lengths in (max_len, long_len]
    name: str = "parity"

    def prepare(self, seed: int) -> dict:
        train_gen = torch.Generator().manual_seed(seed_for(seed, self.name, "train"))
        test_gen = torch.Generator().manual_seed(seed_for(seed, self.name, "test"))
        return {
            "train": generate(self.spec, self.optim.steps * self.optim.batch, train_gen),
            "test": generate(self.spec, self.n_test, test_gen),
            "long": generate(self.spec, self.n_test // 2, test_gen, self.spec.max_len + 1, self.long_len),
        }

    def run(self, mixer_cls: type, data: dict, seed: int, device: str = "cpu") -> dict:
        model = build_model(mixer_cls, self.spec.vocab, self.model, seed, device)
        log = train(model, *to_device(data["train"], device), self.optim, self.name)
        return {"parity_acc": round(accuracy(model, *to_device(data["test"], device)), 4),
                "parity_long_acc": round(accuracy(model, *to_device(data["long"], device)), 4),
                "parity_final_loss": round(log.final_loss, 4), "parity_train_s": round(log.seconds, 2)}
