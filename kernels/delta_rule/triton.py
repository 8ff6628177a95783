"""The delta rule as Triton kernels, forward and backward, wired into autograd.

``triton_delta_rule`` is the chunked form (``kernels/triton_chunk_delta.py``): tl.dot within a chunk, the
state passed between chunks; the GPU path of ``chunk_delta_rule``. ``fused_recurrent_delta_rule`` steps token
by token (``kernels/triton_recurrence.py``): the naive loop's arithmetic in one kernel. Both run
under Triton's interpreter on a CPU, slowly.
"""

from torch import Tensor

from ..triton_chunk_delta import CHUNK_SIZE, chunked_delta_recurrence
from ..triton_recurrence import CHUNK_SIZE as RECURRENT_CHUNK_SIZE
from ..triton_recurrence import fused_recurrence
from ..utils import check_qkv, check_shape


def triton_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None = None,
                      initial_state: Tensor | None = None, output_final_state: bool = False,
                      chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_delta_rule`; beta: (B, H, T);
    chunk_size: a power of two >= 16."""
    B, H, T, K, _ = check_qkv(q, k, v)
    check_shape("beta", beta, (B, H, T))
    return chunked_delta_recurrence(q, k, v, beta=beta, scale=scale, initial_state=initial_state,
                                    output_final_state=output_final_state, chunk_size=chunk_size)


def fused_recurrent_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None = None,
                               initial_state: Tensor | None = None, output_final_state: bool = False,
                               chunk_size: int = RECURRENT_CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_delta_rule`; beta: (B, H, T);
    a state is saved every chunk_size tokens for the backward."""
    B, H, T, K, _ = check_qkv(q, k, v)
    check_shape("beta", beta, (B, H, T))
    return fused_recurrence(q, k, v, beta=beta, scale=scale, initial_state=initial_state,
                            output_final_state=output_final_state, chunk_size=chunk_size)
