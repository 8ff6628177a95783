"""``chunked_delta_recurrence`` of ``kernels/triton_chunk_delta.py`` in PyTorch, for an export where triton
is absent: the chunked PyTorch delta rule, gated where g is given.
"""

from __future__ import annotations

from torch import Tensor

from kernels.delta_rule.chunk import chunk_delta_rule
from kernels.gated_delta_rule.chunk import chunk_gated_delta_rule


def torch_chunked_delta_recurrence(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None = None,
                                   scale: float | None = None, initial_state: Tensor | None = None,
                                   output_final_state: bool = False,
                                   chunk_size: int = 16) -> tuple[Tensor, Tensor | None]:
    """The contract of ``chunked_delta_recurrence``; chunk_size, the Triton kernel's tile, is not used."""
    options = {"scale": scale, "initial_state": initial_state, "output_final_state": output_final_state}
    if g is None:
        return chunk_delta_rule(q, k, v, beta, **options)
    return chunk_gated_delta_rule(q, k, v, g, beta, **options)
