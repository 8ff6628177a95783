"""Chunked linear attention: exact, linear in T, pure PyTorch (autograd gives the backward)."""

from torch import Tensor

from ..utils import (
    check_qkv,
    chunk_state_scan,
    compute_dtype,
    fit_chunk_size,
    from_chunks,
    initial_state_or_zeros,
    resolve_scale,
    to_chunks,
)

# Fastest fwd+bwd on one CPU thread at B=64, T=128 and B=32, T=256 (H=2, K=V=32); see README.md.
CHUNK_SIZE = 32


def chunk_linear_attn(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None,
                      initial_state: Tensor | None = None, output_final_state: bool = False,
                      chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_linear_attn`; any T (padded internally to whole chunks)."""
    if q.is_cuda:  # on a GPU, the chunked Triton kernels (kernels/<op>/triton.py)
        from .triton import triton_linear_attn

        return triton_linear_attn(q, k, v, scale=scale, initial_state=initial_state,
                                  output_final_state=output_final_state)
    B, H, T, K, V = check_qkv(q, k, v)
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    S0 = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype)
    qc = to_chunks(q.to(dtype) * resolve_scale(scale, K), C)  # (B, H, N, C, K)
    kc = to_chunks(k.to(dtype), C)
    vc = to_chunks(v.to(dtype), C)  # (B, H, N, C, V)
    A = (qc @ kc.transpose(-1, -2)).tril()  # (B, H, N, C, C)
    states, final = chunk_state_scan(None, kc.transpose(-1, -2) @ vc, S0)  # (B, H, N, K, V)
    o = A @ vc + qc @ states
    return from_chunks(o, T).to(q.dtype), final if output_final_state else None
