"""Chunked gated linear attention with per-key-channel decay: exact, linear in T, pure PyTorch."""

from torch import Tensor

from ..utils import (
    batched_addmm,
    check_qkv,
    check_shape,
    chunk_log_decay,
    chunk_state_scan,
    compute_dtype,
    decayed_chunk_products,
    fit_chunk_size,
    from_chunks,
    initial_state_or_zeros,
    resolve_scale,
    to_chunks,
)

# Fastest fwd+bwd on one CPU thread at B=64, T=128 and B=32, T=256 (H=2, K=V=32), and the largest
# chunk for which the float64 factorization below cannot overflow: 16 * 40 = 640 < 709 = ln(max float64).
CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 16


def chunk_gla(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None,
              initial_state: Tensor | None = None, output_final_state: bool = False,
              chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_gla`; g: (B, H, T, K) log-decay <= 0; chunk_size <= 16.

    Exact for any g (per-step log-decays are floored at LOG_DECAY_FLOOR, far below float32
    resolution) and bit-exactly causal; see README.md for the intra-chunk factorization.
    """
    if q.is_cuda:  # on a GPU, the chunked Triton kernels (kernels/<op>/triton.py)
        from .triton import triton_gla

        return triton_gla(q, k, v, g, scale=scale, initial_state=initial_state,
                          output_final_state=output_final_state)
    B, H, T, K, V = check_qkv(q, k, v)
    check_shape("g", g, (B, H, T, K))
    if chunk_size > MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_gla needs chunk_size <= {MAX_CHUNK_SIZE} (float64 exponent range), "
                         f"got {chunk_size}")
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    S0 = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype)
    qc = to_chunks(q.to(dtype) * resolve_scale(scale, K), C)  # (B, H, N, C, K)
    kc = to_chunks(k.to(dtype), C)
    vc = to_chunks(v.to(dtype), C)  # (B, H, N, C, V)
    b = chunk_log_decay(g.to(dtype), C)  # (B, H, N, C, K), in [C * LOG_DECAY_FLOOR, 0]
    # A[i, j] = q_i . (exp(b_i - b_j) * k_j) for j <= i, factored about the chunk start in float64 (exp(-b_j)
    # reaches e^640) with its backward written out, q decayed from the chunk start, k to its end, and the
    # chunk's decay: one node (kernels.utils.decayed_chunk_products), as for KDA and RWKV-7.
    A, q_from_start, k_to_end, chunk_decay = decayed_chunk_products(b, (qc,), (kc,), reads_before=(False,),
                                                                    diagonals=(0,))
    updates = k_to_end.transpose(-1, -2) @ vc  # (B, H, N, K, V)
    states, final = chunk_state_scan(chunk_decay, updates, S0)
    o = batched_addmm(A @ vc, q_from_start, states)
    return from_chunks(o, T).to(q.dtype), final if output_final_state else None
