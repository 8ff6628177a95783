"""``chunked_recurrence`` of ``kernels/triton_chunk.py`` in PyTorch, for an export where triton is absent.

The Triton kernel picks its decay from g's shape; so does this, taking the chunked PyTorch form of the
same recurrence: linear attention (no g), simple GLA (g per head) or GLA (g per key channel).
"""

from __future__ import annotations

from torch import Tensor

from kernels.gla.chunk import chunk_gla
from kernels.linear_attn.chunk import chunk_linear_attn
from kernels.simple_gla.chunk import chunk_simple_gla


def torch_chunked_recurrence(q: Tensor, k: Tensor, v: Tensor, g: Tensor | None = None, scale: float | None = None,
                             initial_state: Tensor | None = None, output_final_state: bool = False,
                             chunk_size: int = 16) -> tuple[Tensor, Tensor | None]:
    """The contract of ``chunked_recurrence``; chunk_size, the Triton kernel's tile, is not used (each
    PyTorch form takes its own chunk size, which changes nothing but rounding)."""
    options = {"scale": scale, "initial_state": initial_state, "output_final_state": output_final_state}
    if g is None:
        return chunk_linear_attn(q, k, v, **options)
    if g.dim() == 3:
        return chunk_simple_gla(q, k, v, g, **options)
    return chunk_gla(q, k, v, g, **options)
