"""Chunked Kimi Delta Attention: the delta rule's WY/UT form with per-key-channel decays; exact, linear in
T, pure PyTorch."""

from torch import Tensor

from ..delta_rule.chunk import delta_chunk_scan
from ..utils import (
    batched_addmm,
    check_qkv,
    check_shape,
    chunk_log_decay,
    compute_dtype,
    decayed_chunk_products,
    fit_chunk_size,
    from_chunks,
    initial_state_or_zeros,
    invert_unit_lower,
    resolve_scale,
    to_chunks,
)

# As for chunk_gla: the largest chunk for which the float64 factorization of the intra-chunk products
# cannot overflow (16 * 40 = 640 < 709 = ln(max float64)), and the size the other delta rules default to.
CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 16


def chunk_kda(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float | None = None,
              initial_state: Tensor | None = None, output_final_state: bool = False,
              chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_kda`; g: (B, H, T, K) log-decay <= 0, beta: (B, H, T); chunk_size <= 16.

    Exact for any g (per-step log-decays are floored at LOG_DECAY_FLOOR) and bit-exactly causal;
    README.md has the derivation. Runs in PyTorch on every device (there is no Triton kernel for it).
    """
    B, H, T, K, V = check_qkv(q, k, v)
    check_shape("g", g, (B, H, T, K))
    check_shape("beta", beta, (B, H, T))
    if chunk_size > MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_kda needs chunk_size <= {MAX_CHUNK_SIZE} (float64 exponent range), "
                         f"got {chunk_size}")
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    scale = resolve_scale(scale, K)
    qc = to_chunks(q.to(dtype), C)  # (B, H, N, C, K)
    kc = to_chunks(k.to(dtype), C)
    vc = to_chunks(v.to(dtype), C)  # (B, H, N, C, V)
    betac = to_chunks(beta.to(dtype), C)  # (B, H, N, C)
    b = chunk_log_decay(g.to(dtype), C)  # (B, H, N, C, K), in [C * LOG_DECAY_FLOOR, 0]
    # Aqk[i, j] = q_i . (exp(b_i - b_j) * k_j) for j <= i, Akk the same for k_i and j < i; q and k
    # decayed from the chunk start, k to its end, and the chunk's decay (kernels.utils).
    Aqk, Akk, q_from_start, k_from_start, k_to_end, chunk_decay = decayed_chunk_products(
        b, (qc, kc), (kc,), reads_before=(False, False), diagonals=(0, -1))
    L = Akk * betac.unsqueeze(-1)  # strictly_lower(diag(beta) (K K^T decayed))
    Tinv = invert_unit_lower(L) * betac.unsqueeze(-2)  # T diag(beta)
    # w: how the pseudo-values depend on the entering state; u: the pseudo-values from the chunk's own tokens
    w, u = Tinv @ k_from_start, Tinv @ vc  # (B, H, N, C, K), (B, H, N, C, V)
    S0 = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype).flatten(0, 1)  # (B * H, K, V)

    def per_head(x: Tensor) -> Tensor:
        return x.flatten(0, 1)

    new_v, states, S = delta_chunk_scan(per_head(w), per_head(u), per_head(k_to_end.transpose(-1, -2)),
                                        per_head(chunk_decay), S0)
    o = batched_addmm(q_from_start @ states.view(B, H, -1, K, V), Aqk, new_v.view(B, H, -1, C, V)) * scale
    return from_chunks(o, T).to(q.dtype), S.view(B, H, K, V) if output_final_state else None
