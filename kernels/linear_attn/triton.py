"""Linear attention as Triton kernels, forward and backward, wired into autograd.

``triton_linear_attn`` is the chunked form (``kernels/triton_chunk.py``): tl.dot within a chunk, the
state passed between chunks; the GPU path of ``chunk_linear_attn``. ``fused_recurrent_linear_attn`` steps token
by token (``kernels/triton_recurrence.py``): the naive loop's arithmetic in one kernel. Both run
under Triton's interpreter on a CPU, slowly.
"""

from torch import Tensor

from ..triton_chunk import CHUNK_SIZE, chunked_recurrence
from ..triton_recurrence import CHUNK_SIZE as RECURRENT_CHUNK_SIZE
from ..triton_recurrence import fused_recurrence


def triton_linear_attn(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None,
                       initial_state: Tensor | None = None, output_final_state: bool = False,
                       chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_linear_attn`;
    chunk_size: a power of two >= 16."""
    return chunked_recurrence(q, k, v, scale=scale, initial_state=initial_state,
                              output_final_state=output_final_state, chunk_size=chunk_size)


def fused_recurrent_linear_attn(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None,
                                initial_state: Tensor | None = None, output_final_state: bool = False,
                                chunk_size: int = RECURRENT_CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_linear_attn`;
    a state is saved every chunk_size tokens for the backward."""
    return fused_recurrence(q, k, v, scale=scale, initial_state=initial_state,
                            output_final_state=output_final_state, chunk_size=chunk_size)
