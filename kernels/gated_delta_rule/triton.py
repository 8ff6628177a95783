"""The gated delta rule as a Triton kernel, forward and backward (``kernels/triton_recurrence.py``).

Exact like the naive token loop (float32 state, no chunk-level reformulation), differentiable through
autograd, and usable on a GPU or, slowly, under Triton's interpreter on a CPU.
"""

from torch import Tensor

from ..triton_recurrence import CHUNK_SIZE, fused_recurrence
from ..utils import check_qkv, check_shape


def triton_gated_delta_rule(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float | None = None,
                            initial_state: Tensor | None = None, output_final_state: bool = False,
                            chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_gated_delta_rule`; g, beta: (B, H, T)."""
    B, H, T, K, _ = check_qkv(q, k, v)
    check_shape("g", g, (B, H, T))
    check_shape("beta", beta, (B, H, T))
    return fused_recurrence(q, k, v, g=g, beta=beta, scale=scale, initial_state=initial_state,
                            output_final_state=output_final_state, chunk_size=chunk_size)
