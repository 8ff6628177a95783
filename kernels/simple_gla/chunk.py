"""Chunked scalar-gated linear attention: exact, linear in T, pure PyTorch."""

from torch import Tensor

from ..utils import (
    check_qkv,
    check_shape,
    chunk_log_decay,
    chunk_state_scan,
    compute_dtype,
    fit_chunk_size,
    from_chunks,
    initial_state_or_zeros,
    pairwise_decay,
    resolve_scale,
    to_chunks,
)

# Fastest fwd+bwd on one CPU thread at B=64, T=128 and B=32, T=256 (H=2, K=V=32); see README.md.
CHUNK_SIZE = 32


def chunk_simple_gla(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None,
                     initial_state: Tensor | None = None, output_final_state: bool = False,
                     chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_simple_gla`; g: (B, H, T) log-decay <= 0."""
    if q.is_cuda:  # on a GPU, the chunked Triton kernels (kernels/<op>/triton.py)
        from .triton import triton_simple_gla

        return triton_simple_gla(q, k, v, g, scale=scale, initial_state=initial_state,
                                 output_final_state=output_final_state)
    B, H, T, K, V = check_qkv(q, k, v)
    check_shape("g", g, (B, H, T))
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    S0 = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype)
    qc = to_chunks(q.to(dtype) * resolve_scale(scale, K), C)  # (B, H, N, C, K)
    kc = to_chunks(k.to(dtype), C)
    vc = to_chunks(v.to(dtype), C)  # (B, H, N, C, V)
    b = chunk_log_decay(g.to(dtype), C)  # (B, H, N, C)
    b_last = b[..., -1:]
    A = (qc @ kc.transpose(-1, -2)) * pairwise_decay(b)  # (B, H, N, C, C)
    updates = (kc * (b_last - b).exp().unsqueeze(-1)).transpose(-1, -2) @ vc  # (B, H, N, K, V)
    states, final = chunk_state_scan(b_last.squeeze(-1).exp(), updates, S0)
    o = A @ vc + (qc * b.exp().unsqueeze(-1)) @ states
    return from_chunks(o, T).to(q.dtype), final if output_final_state else None
