"""Linear attention as a Triton kernel, forward and backward (``kernels/triton_recurrence.py``).

Exact like the naive token loop (float32 state, no chunk-level reformulation), differentiable through
autograd, and usable on a GPU or, slowly, under Triton's interpreter on a CPU.
"""

from torch import Tensor

from ..triton_recurrence import CHUNK_SIZE, fused_recurrence


def triton_linear_attn(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None,
                       initial_state: Tensor | None = None, output_final_state: bool = False,
                       chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_linear_attn`."""
    return fused_recurrence(q, k, v, scale=scale, initial_state=initial_state,
                            output_final_state=output_final_state, chunk_size=chunk_size)
