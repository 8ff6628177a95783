"""Multi-query associative recall (MQAR), as in the Zoology paper (Arora et al., 2023).

Keys are distinct tokens from [1, V/2), values from [V/2, V). The first 2K positions hold
k1 v1 ... kK vK; K of the remaining positions re-ask a key, placed with a power law that favours
positions close to the context (a = 0.01). The label at a query position is the key's value;
every other position is ignored. Unused positions hold token 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluator.tasks.common import ModelShape, Sized, build_model, seed_for, to_device
from evaluator.train import IGNORE, Optim, train


@dataclass(frozen=True)
class MQARSpec:
    vocab: int = 256
    seq_len: int = 64
    n_pairs: int = 8
    power_a: float = 0.01


def generate(spec: MQARSpec, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples: (inputs, labels), both (n, seq_len) int64."""
    V, T, K = spec.vocab, spec.seq_len, spec.n_pairs
    if 2 * K > V // 2 - 1 or 4 * K > T:
        raise ValueError(f"MQAR needs 2K <= V/2 - 1 and 4K <= T, got V={V}, T={T}, K={K}")
    keys = torch.rand(n, V // 2 - 1, generator=generator).argsort(dim=1)[:, :K] + 1  # distinct, in [1, V/2)
    values = torch.randint(V // 2, V, (n, K), generator=generator)
    inputs = torch.zeros(n, T, dtype=torch.long)
    labels = torch.full((n, T), IGNORE, dtype=torch.long)
    inputs[:, 0 : 2 * K : 2] = keys
    inputs[:, 1 : 2 * K : 2] = values

    # Query positions: K distinct gaps after the context, with p(gap) ∝ a * gap^(a-1).
    space = T - 2 * K
    gaps = torch.arange(1, space + 1, dtype=torch.float64)
    weights = (spec.power_a * gaps ** (spec.power_a - 1)).expand(n, space)
    positions = 2 * K + torch.multinomial(weights, K, replacement=False, generator=generator)  # (n, K)
    order = torch.rand(n, K, generator=generator).argsort(dim=1)  # which key each query asks
    asked_keys = keys.gather(1, order)
    asked_values = values.gather(1, order)
    inputs.scatter_(1, positions, asked_keys)
    labels.scatter_(1, positions, asked_values)
    return inputs, labels


@dataclass(frozen=True)
class MQAR(Sized):
    """Train a fresh backbone on MQAR; the trusted side measures accuracy on a held-out set."""

    spec: MQARSpec
    model: ModelShape
    optim: Optim
    n_test: int = 512
    name: str = "mqar"
    answers: str = "argmax"  # what a query returns per position (``evaluator.measure``)

    @property
    def seq_len(self) -> int:
        return self.spec.seq_len

    def train_data(self, seed: int, source: bytes | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return generate(self.spec, self.optim.steps * self.optim.batch,
                        torch.Generator().manual_seed(seed_for(seed, self.name, "train")))

    def heldout(self, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The test set, from a seed only the trusted side knows."""
        return {"test": generate(self.spec, self.n_test, torch.Generator().manual_seed(seed))}

    measures = {"test": ("mqar_acc", "accuracy")}

    def train(self, mixer_cls: type, data: tuple, seed: int, device: str = "cpu") -> tuple:
        """The trained model and what training reports (information, never scored)."""
        model = build_model(mixer_cls, self.spec.vocab, self.model, seed, device)
        log = train(model, *to_device(data, device), self.optim, self.name)
        return model, {"mqar_final_loss": round(log.final_loss, 4), "mqar_train_s": round(log.seconds, 2)}
