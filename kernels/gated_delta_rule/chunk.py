"""Chunked gated delta rule (Gated DeltaNet) in the WY/UT form: exact, linear in T, pure PyTorch."""

from torch import Tensor

from ..delta_rule.chunk import delta_rule_chunked

# Fastest fwd+bwd on one CPU thread at B=64, T=128 and B=32, T=256 (H=2, K=V=32); see README.md.
CHUNK_SIZE = 16


def chunk_gated_delta_rule(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor,
                           scale: float | None = None, initial_state: Tensor | None = None,
                           output_final_state: bool = False,
                           chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_gated_delta_rule`; g, beta: (B, H, T)."""
    if q.is_cuda:  # on a GPU, the chunked Triton kernels (kernels/<op>/triton.py)
        from .triton import triton_gated_delta_rule

        return triton_gated_delta_rule(q, k, v, g, beta, scale=scale, initial_state=initial_state,
                                       output_final_state=output_final_state)
    return delta_rule_chunked(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size)
