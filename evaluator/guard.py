"""Detecting a design that patches what the harness relies on: an early, friendly error.

The harness snapshots the identity of every function it uses to train and answer queries before
the candidate is imported, and re-checks after each phase. This is not what makes results
trustworthy (a design shares the process and can do anything it can; the metrics are measured
outside it, ``evaluator.measure``): it names the common way of trying, so the user reads
``tamper`` instead of a mysterious score.
"""

from __future__ import annotations

import builtins
import math

import torch
import torch.nn.functional as F

import evaluator.backbone
import evaluator.checks
import evaluator.train
from evaluator.status import EvalFailure

_WATCHED = {
    "torch": torch, "torch.nn.functional": F, "torch.Tensor": torch.Tensor, "torch.optim.AdamW": torch.optim.AdamW,
    "torch.nn.Module": torch.nn.Module, "torch.autograd": torch.autograd, "torch.nn.utils": torch.nn.utils,
    "math": math, "builtins": builtins, "evaluator.train": evaluator.train, "evaluator.checks": evaluator.checks,
    "LanguageModel": evaluator.backbone.LanguageModel,  # the loss runs it on the labelled positions
}
_NAMES = {
    "torch": ("isfinite", "equal", "randn", "randint", "stack", "no_grad", "manual_seed"),
    "torch.nn.functional": ("cross_entropy",),
    "torch.Tensor": ("backward", "argmax", "item", "sum", "eq", "__eq__", "__ne__", "isfinite", "all"),
    "torch.optim.AdamW": ("step",),
    "torch.nn.Module": ("__call__", "parameters", "named_parameters", "zero_grad", "train", "eval"),
    "torch.autograd": ("backward", "grad"),
    "torch.nn.utils": ("clip_grad_norm_",),
    "math": ("log", "isfinite"),
    "builtins": ("sum", "abs", "min", "max", "len", "isinstance", "round", "float", "int"),
    "evaluator.train": ("train", "loss_fn", "lr_at"),
    "evaluator.checks": ("check_shapes_and_causality", "check_model", "check_recurrent", "rel_rms"),
    "LanguageModel": ("forward",),
}


def _settle() -> None:
    """torch wraps some functions lazily on first use (AdamW.step gets a profiling hook when the first
    optimizer is built, and its first step imports torch._dynamo, about 1.2 s): use them once, here,
    so a snapshot holds their final form. Done at import, in the sandbox's fork server, every job
    inherits the result instead of paying for it."""
    param = torch.nn.Parameter(torch.zeros(1))
    param.grad = torch.zeros(1)
    torch.optim.AdamW([param]).step()


_settle()


class Guard:
    """``extra``: more owners to watch, {label: (object, attribute names)}."""

    def __init__(self, extra: dict[str, tuple[object, tuple[str, ...]]] | None = None) -> None:
        self._extra = dict(extra or {})
        self._snapshot = self._take()

    def _take(self) -> dict[str, object]:
        # The objects themselves, not their ids: a replaced function is freed, and a later object
        # can be allocated at its address and so carry its id.
        watched = {owner: (_WATCHED[owner], names) for owner, names in _NAMES.items()} | self._extra
        return {f"{owner}.{name}": getattr(obj, name, None)
                for owner, (obj, names) in watched.items() for name in names}

    def verify(self, phase: str) -> None:
        now = self._take()
        changed = sorted(name for name, original in self._snapshot.items() if now.get(name) is not original)
        if changed:
            raise EvalFailure("tamper", f"after {phase}: {', '.join(changed)} replaced")
