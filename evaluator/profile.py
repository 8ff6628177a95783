"""Profiling figures: FLOPs from torch's flop counter, peak memory of the evaluation process."""

from __future__ import annotations

import resource
import sys

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from evaluator.train import loss_fn


def flops_per_token(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Forward + backward FLOPs of one training step, divided by the tokens in it."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss_fn(model, inputs, labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / inputs.numel()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
