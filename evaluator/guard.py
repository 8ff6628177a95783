"""Detecting a design that patches what the harness relies on.

The harness snapshots the identity of every function it uses to train and measure before the
candidate is imported, and re-checks after each phase. The static scan forbids the obvious ways
to patch; this catches the rest (e.g. a method swapped through an object the design was handed).
"""

from __future__ import annotations

import builtins
import math

import torch
import torch.nn.functional as F

import evaluator.checks
import evaluator.train
from evaluator.status import EvalFailure

_WATCHED = {
    "torch": torch, "torch.nn.functional": F, "torch.Tensor": torch.Tensor, "torch.optim.AdamW": torch.optim.AdamW,
    "torch.nn.Module": torch.nn.Module, "torch.autograd": torch.autograd, "torch.nn.utils": torch.nn.utils,
    "math": math, "builtins": builtins, "evaluator.train": evaluator.train, "evaluator.checks": evaluator.checks,
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
    "evaluator.train": ("train", "accuracy", "bits_per_byte", "loss_fn", "lr_at"),
    "evaluator.checks": ("check_shapes_and_causality", "check_model", "check_recurrent", "scaling_probe", "rel_rms"),
}


class Guard:
    def __init__(self) -> None:
        # torch wraps some functions lazily on first use (AdamW.step gets a profiling hook when the
        # first optimizer is built); use them once so the snapshot holds their final form.
        param = torch.nn.Parameter(torch.zeros(1))
        param.grad = torch.zeros(1)
        torch.optim.AdamW([param]).step()
        self._snapshot = self._take()

    @staticmethod
    def _take() -> dict[str, int]:
        return {f"{owner}.{name}": id(getattr(_WATCHED[owner], name))
                for owner, names in _NAMES.items() for name in names}

    def verify(self, phase: str) -> None:
        now = self._take()
        changed = sorted(name for name, ident in self._snapshot.items() if now.get(name) != ident)
        if changed:
            raise EvalFailure("tamper", f"after {phase}: {', '.join(changed)} replaced")
