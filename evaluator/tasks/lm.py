"""Byte-level language modelling on text that ships with Python (``pydoc_data.topics``).

About 466 KB of English prose with code samples, present on every machine with no download.
Users may point at their own UTF-8 files instead. The last tenth is held out for validation.
At CPU budgets this is a gate, not a ranking signal (see EVALUATION.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evaluator.tasks.common import ModelShape, build_model, seed_for, to_device
from evaluator.train import Optim, bits_per_byte, train


@dataclass(frozen=True)
class LMSpec:
    seq_len: int = 128
    vocab: int = 256
    corpus: tuple[str, ...] = ()  # file paths; empty means the embedded pydoc corpus


def corpus_bytes(paths: tuple[str, ...] = ()) -> bytes:
    if not paths:
        from pydoc_data.topics import topics

        return "\n\n".join(topics[key] for key in sorted(topics)).encode("utf-8")
    return b"\n\n".join(Path(path).read_bytes() for path in paths)


def split(data: bytes, holdout: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    cut = int(len(tokens) * (1 - holdout))
    return tokens[:cut], tokens[cut:]


def windows(tokens: torch.Tensor, seq_len: int, n: int,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random windows: inputs (n, seq_len) and next-byte labels (n, seq_len)."""
    starts = torch.randint(0, len(tokens) - seq_len - 1, (n,), generator=generator)
    index = starts[:, None] + torch.arange(seq_len + 1)
    chunk = tokens[index]
    return chunk[:, :-1], chunk[:, 1:]


@dataclass(frozen=True)
class ByteLM:
    """Train a fresh backbone on bytes of the corpus; report validation bits per byte."""

    spec: LMSpec
    model: ModelShape
    optim: Optim
    n_val: int = 64
    name: str = "lm"

    def prepare(self, seed: int) -> dict:
        train_tokens, val_tokens = split(corpus_bytes(self.spec.corpus))
        train_gen = torch.Generator().manual_seed(seed_for(seed, self.name, "train"))
        val_gen = torch.Generator().manual_seed(seed_for(0, self.name, "val"))  # one validation set for all seeds
        return {"train": windows(train_tokens, self.spec.seq_len, self.optim.steps * self.optim.batch, train_gen),
                "val": windows(val_tokens, self.spec.seq_len, self.n_val, val_gen)}

    def run(self, mixer_cls: type, data: dict, seed: int, device: str = "cpu") -> dict:
        model = build_model(mixer_cls, self.spec.vocab, self.model, seed, device)
        log = train(model, *to_device(data["train"], device), self.optim, self.name)
        return {"lm_bpb": round(bits_per_byte(model, *to_device(data["val"], device)), 4),
                "lm_train_s": round(log.seconds, 2)}
