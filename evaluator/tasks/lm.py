"""Byte-level language modelling on text that ships with Python (``pydoc_data.topics``).

About 466 KB of English prose with code samples, present on every machine with no download.
Users may point at their own UTF-8 files instead. The last tenth is held out for validation.
At CPU budgets this is a gate, not a ranking signal (see EVALUATION.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evaluator.tasks.common import ModelShape, Sized, build_model, seed_for, to_device
from evaluator.train import Optim, train


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
class ByteLM(Sized):
    """Train a fresh backbone on bytes of the corpus; the trusted side measures validation bits per byte.

    The trusted side reads the corpus and hands the design's process the training split only
    (``source``), so the validation text never passes through it.
    """

    spec: LMSpec
    model: ModelShape
    optim: Optim
    n_val: int = 64
    name: str = "lm"
    answers: str = "logprobs"

    @property
    def seq_len(self) -> int:
        return self.spec.seq_len

    def source(self) -> bytes:
        """The training split, which the design's process receives instead of reading the corpus."""
        train_tokens, _ = split(corpus_bytes(self.spec.corpus))
        return train_tokens.to(torch.uint8).numpy().tobytes()

    def hidden(self) -> tuple[str, ...]:
        """What the design's processes may not read: the corpus, whose last tenth is the validation text."""
        if self.spec.corpus:
            return tuple(str(Path(path).resolve()) for path in self.spec.corpus)
        import pydoc_data

        return (str(Path(pydoc_data.__file__).resolve().parent),)

    def train_data(self, seed: int, source: bytes | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.frombuffer(bytearray(source or self.source()), dtype=torch.uint8).long()
        generator = torch.Generator().manual_seed(seed_for(seed, self.name, "train"))
        return windows(tokens, self.spec.seq_len, self.optim.steps * self.optim.batch, generator)

    def heldout(self, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        _, val_tokens = split(corpus_bytes(self.spec.corpus))
        return {"val": windows(val_tokens, self.spec.seq_len, self.n_val, torch.Generator().manual_seed(seed))}

    measures = {"val": ("lm_bpb", "bpb")}

    def train(self, mixer_cls: type, data: tuple, seed: int, device: str = "cpu") -> tuple:
        model = build_model(mixer_cls, self.spec.vocab, self.model, seed, device)
        log = train(model, *to_device(data, device), self.optim, self.name)
        return model, {"lm_train_s": round(log.seconds, 2)}
