"""The training loop shared by every task, run in the design's process.

Nothing here is trusted: the design's code runs in the same process and could change any of it.
What counts is measured afterwards by ``evaluator.measure``, from outside, on data this process
never sees; what training reports (its losses) is information only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluator.status import EvalFailure

IGNORE = -100  # a label that neither the loss nor accuracy counts: tasks put it where there is nothing to predict


@dataclass(frozen=True)
class Optim:
    steps: int
    batch: int
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: float = 0.05  # fraction of steps
    clip: float = 1.0
    beta2: float = 0.98  # AdamW's second-moment decay
    # weight decay on every parameter, as Zoology's trainer has it; otherwise embeddings, norms' gains and
    # biases (every parameter of fewer than two dimensions) are left undecayed
    decay_all: bool = False


@dataclass(frozen=True)
class TrainLog:
    final_loss: float
    tokens_per_s: float
    seconds: float
    losses: tuple[float, ...]  # mean loss per tenth of training


def lr_at(step: int, optim: Optim) -> float:
    warmup = max(1, int(optim.warmup * optim.steps))
    if step < warmup:
        return optim.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, optim.steps - warmup)
    return optim.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def loss_fn(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled positions. Where some are unlabelled (MQAR labels its queries
    only, a fifth of the tokens), the head runs on the labelled ones alone, the same loss for less work."""
    labelled = labels != IGNORE
    if labelled.all():
        logits = model(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
    return F.cross_entropy(model(inputs, labelled).float(), labels[labelled])


def train(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, optim: Optim, task: str) -> TrainLog:
    """Train on ``optim.steps`` batches drawn in order from (inputs, labels)."""
    decayed = [optim.decay_all or (p.dim() >= 2 and "embed" not in n) for n, p in model.named_parameters()]
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p, d in zip(params, decayed) if d], "weight_decay": optim.weight_decay},
                             {"params": [p for p, d in zip(params, decayed) if not d], "weight_decay": 0.0}],
                            lr=optim.lr, betas=(0.9, optim.beta2))
    n = inputs.shape[0]
    losses: list[float] = []
    timed_tokens, timed_seconds = 0, 0.0
    model.train()
    start = time.perf_counter()
    for step in range(optim.steps):
        lo = (step * optim.batch) % n
        x, y = inputs[lo : lo + optim.batch], labels[lo : lo + optim.batch]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, optim)
        t0 = time.perf_counter()
        loss = loss_fn(model, x, y)
        if not torch.isfinite(loss):
            raise EvalFailure("nan", f"{task}: training loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.clip)
        opt.step()
        if step >= min(5, optim.steps - 1):  # skip warm-up steps when measuring throughput
            timed_seconds += time.perf_counter() - t0
            timed_tokens += x.numel()
        losses.append(loss.item())
    tenth = max(1, len(losses) // 10)
    curve = tuple(sum(losses[i : i + tenth]) / len(losses[i : i + tenth]) for i in range(0, len(losses), tenth))
    return TrainLog(final_loss=curve[-1], tokens_per_s=timed_tokens / max(timed_seconds, 1e-9),
                    seconds=time.perf_counter() - start, losses=curve)
