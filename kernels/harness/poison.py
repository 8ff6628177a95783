"""Poisoned memory: whatever a kernel leaves unwritten reads as NaN.

Under torch's deterministic mode with ``torch.utils.deterministic.fill_uninitialized_memory``,
``torch.empty`` and its relatives fill new tensors with NaN (integers with their maximum) on the CPU
and on CUDA. A kernel that computes only part of its output into ``torch.empty`` memory, or returns
such memory hoping it still holds a result the allocator just took back, then returns NaN where it
skipped work, and the finiteness check rejects it. ``dirty_allocator`` additionally hands NaN-filled
blocks back to the allocator before each call, for memory obtained any other way. Both are undone
on exit: training elsewhere must not pay for the fill or change its algorithms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.utils.deterministic


@contextmanager
def poisoned_memory() -> Iterator[None]:
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def dirty_allocator(sizes: list[int], device: torch.device | str) -> None:
    """Allocate NaN-filled float32 blocks of the given byte sizes and free them at once, so that
    the next allocations of those sizes are likely to reuse poisoned memory."""
    blocks = [torch.full((max(1, n // 4),), float("nan"), dtype=torch.float32, device=device) for n in sizes]
    del blocks
