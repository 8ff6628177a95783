"""Poisoned memory: whatever a kernel leaves unwritten reads as a value it cannot predict.

While the harness calls a kernel, every fresh allocation (``torch.empty`` and its relatives) is filled
with the case's fill value (``fill_fresh``, called by the watch in ``kernels.harness.watch``), and
``dirty_allocator`` hands blocks holding that value back to the allocator first, for memory obtained
any other way. The value changes from case to case: NaN, an infinity, zero, a random constant or a
constant at the scale of the inputs (``kernels.harness.cases.fill_value``). A kernel that computes only
part of its output, returns memory it never wrote hoping it still holds an earlier result, or computes
honestly only when fresh memory reads as NaN (and so only under a harness that always poisons with
NaN), returns values that the comparison rejects in some case.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def fill_for(dtype: torch.dtype, value: float) -> float | int | bool | None:
    """``value`` as a ``dtype`` can hold it: integers take their largest value for NaN and the
    infinities, booleans True; None for types that are not filled (complex)."""
    if dtype.is_complex:
        return None
    if dtype == torch.bool:
        return True
    if dtype.is_floating_point:
        return value
    info = torch.iinfo(dtype)
    if not math.isfinite(value):
        return info.max
    return int(min(max(value, info.min), info.max))


def fill_fresh(t: Tensor, value: float) -> None:
    """Fill a freshly allocated tensor with ``value`` (its whole storage, where a view was returned)."""
    fill = fill_for(t.dtype, value)
    if fill is None or t.numel() == 0:
        return
    storage = t.untyped_storage()
    whole = t.new_empty(0).set_(storage, 0, (storage.nbytes() // t.element_size(),), (1,))
    whole.fill_(fill)


def dirty_allocator(sizes: list[int], device: torch.device | str, value: float = math.nan) -> None:
    """Allocate blocks of the given byte sizes holding ``value`` (as float32) and free them at once, so
    that the next allocations of those sizes are likely to reuse poisoned memory."""
    blocks = [torch.full((max(1, n // 4),), value, dtype=torch.float32, device=device) for n in sizes]
    del blocks
