"""Gated linear attention (per-key-channel decay) as a Triton kernel, forward and backward
(``kernels/triton_recurrence.py``).

Exact like the naive token loop (float32 state, no chunk-level reformulation), differentiable through
autograd, and usable on a GPU or, slowly, under Triton's interpreter on a CPU.
"""

from torch import Tensor

from ..triton_recurrence import CHUNK_SIZE, fused_recurrence
from ..utils import check_qkv, check_shape


def triton_gla(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None,
               initial_state: Tensor | None = None, output_final_state: bool = False,
               chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_gla`; g: (B, H, T, K) log-decay <= 0."""
    B, H, T, K, _ = check_qkv(q, k, v)
    check_shape("g", g, (B, H, T, K))
    return fused_recurrence(q, k, v, g=g, scale=scale, initial_state=initial_state,
                            output_final_state=output_final_state, chunk_size=chunk_size)
