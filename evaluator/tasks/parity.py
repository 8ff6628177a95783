"""Parity as a state-tracking probe (Grazzi et al., 2024).

Inputs are bits (tokens 0 and 1) after a BOS token (2); the label at every bit is the parity of
the bits so far. Sequences have random lengths in [min_len, max_len] and are padded with BOS
(ignored labels) to max_len + 1. Diagonal, non-negative state transitions cannot solve it;
a delta rule whose transition has negative eigenvalues can.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluator.tasks.common import ModelShape, Sized, build_model, seed_for, to_device
from evaluator.train import IGNORE, Optim, train

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
class Parity(Sized):
    """Train a fresh backbone on parity; the trusted side measures per-bit accuracy at the trained
    lengths and beyond."""

    spec: ParitySpec
    model: ModelShape
    optim: Optim
    n_test: int = 512
    long_len: int = 80  # extrapolation probe: lengths in (max_len, long_len]
    name: str = "parity"
    answers: str = "argmax"

    @property
    def seq_len(self) -> int:
        return self.spec.max_len + 1

    def train_data(self, seed: int, source: bytes | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return generate(self.spec, self.optim.steps * self.optim.batch,
                        torch.Generator().manual_seed(seed_for(seed, self.name, "train")))

    def heldout(self, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(seed)
        return {"test": generate(self.spec, self.n_test, generator),
                "long": generate(self.spec, self.n_test // 2, generator, self.spec.max_len + 1, self.long_len)}

    measures = {"test": ("parity_acc", "accuracy"), "long": ("parity_long_acc", "accuracy")}

    def train(self, mixer_cls: type, data: tuple, seed: int, device: str = "cpu") -> tuple:
        model = build_model(mixer_cls, self.spec.vocab, self.model, seed, device)
        log = train(model, *to_device(data, device), self.optim, self.name)
        return model, {"parity_final_loss": round(log.final_loss, 4), "parity_train_s": round(log.seconds, 2)}
