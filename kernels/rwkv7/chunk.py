"""Chunked RWKV-7 (a diagonal-plus-rank-one transition per token) in a WY/UT form: exact, linear in T,
pure PyTorch."""

import torch
from torch import Tensor

from ..delta_rule.chunk import delta_chunk_scan
from ..utils import (
    LOG_DECAY_FLOOR,
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

# As for chunk_gla and chunk_kda: the largest chunk for which the float64 factorization of the
# intra-chunk products cannot overflow (16 * 40 = 640 < 709 = ln(max float64)), at the default floor.
CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 16
MAX_CHUNK_SPAN = MAX_CHUNK_SIZE * -LOG_DECAY_FLOOR  # chunk_size * -log_decay_floor at most


def chunk_rwkv7(q: Tensor, k: Tensor, v: Tensor, g: Tensor, kappa: Tensor, a: Tensor, scale: float | None = None,
                initial_state: Tensor | None = None, output_final_state: bool = False,
                chunk_size: int = CHUNK_SIZE, log_decay_floor: float = LOG_DECAY_FLOOR) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_rwkv7`; g, kappa, a: (B, H, T, K); chunk_size <= 16 at the default floor.

    Exact for any g (per-step log-decays are floored at ``log_decay_floor``) and bit-exactly causal;
    README.md has the derivation. Runs in PyTorch on every device (there is no Triton kernel for it). A caller
    whose log-decays are bounded below by construction (RWKV-7's by -e^-0.5) passes that bound: where it keeps
    a chunk's decay within ``kernels.utils.NARROW_SPAN``, the intra-chunk products run in the inputs' dtype
    instead of float64, and chunks up to ``MAX_CHUNK_SPAN / -log_decay_floor`` steps are allowed.
    """
    B, H, T, K, V = check_qkv(q, k, v)
    for name, x in (("g", g), ("kappa", kappa), ("a", a)):
        check_shape(name, x, (B, H, T, K))
    if not log_decay_floor < 0:
        raise ValueError(f"chunk_rwkv7 needs log_decay_floor < 0, got {log_decay_floor}")
    if chunk_size * -log_decay_floor > MAX_CHUNK_SPAN:
        raise ValueError(f"chunk_rwkv7 needs chunk_size * -log_decay_floor <= {MAX_CHUNK_SPAN:g} (float64 exponent "
                         f"range; chunk_size <= {MAX_CHUNK_SIZE} at the default floor), got {chunk_size} * "
                         f"{-log_decay_floor:g}")
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    qc = to_chunks(q.to(dtype), C)  # (B, H, N, C, K)
    kc = to_chunks(k.to(dtype), C)
    vc = to_chunks(v.to(dtype), C)  # (B, H, N, C, V)
    kappac = to_chunks(kappa.to(dtype), C)  # the removal's read direction
    ac = to_chunks(a.to(dtype) * kappa.to(dtype), C)  # its write direction is -(a * kappa)
    b = chunk_log_decay(g.to(dtype), C, log_decay_floor)  # (B, H, N, C, K), in [C * log_decay_floor, 0]
    # With alpha = -(a * kappa): A_qa[i, j] = -q_i . (exp(b_i - b_j) * alpha'_j) for j <= i (alpha' = a * kappa),
    # A_qk the same with k_j; A_ra, A_rk the same for kappa_i decayed to S_{i-1}, j < i (kernels.utils).
    (A_qa, A_qk, A_ra, A_rk, q_from_start, kappa_from_start, a_to_end, k_to_end,
     chunk_decay) = decayed_chunk_products(b, (qc, kappac), (ac, kc), reads_before=(False, True), diagonals=(0, -1),
                                          floor=log_decay_floor)
    # Pseudo-values u_t = kappa_t^T S_{t-1}: (I + A_ra) U = (kappa * exp(b_prev)) S + A_rk V (signs: alpha = -a').
    # The scan carries -U (new_v = u - w S with w = Tinv kappa_from_start, u = -Tinv A_rk V): then neither the
    # update S' = diag(chunk_decay) S + (a' exp(b_C - b))^T (-U) + kv nor the output negates a full-size term.
    Tinv = invert_unit_lower(A_ra)
    w = Tinv @ kappa_from_start
    u = torch.matmul(Tinv, A_rk).neg_() @ vc
    kv = k_to_end.transpose(-1, -2) @ vc  # the part of each chunk's update free of S: (B, H, N, K, V)
    S0 = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype).flatten(0, 1)  # (B * H, K, V)

    def per_head(x: Tensor) -> Tensor:
        return x.flatten(0, 1)

    minus_U, states, S = delta_chunk_scan(per_head(w), per_head(u), per_head(a_to_end.transpose(-1, -2)),
                                          per_head(chunk_decay), S0, extra=per_head(kv))
    o = batched_addmm(batched_addmm(A_qk @ vc, q_from_start, states.view(B, H, -1, K, V)), A_qa,
                      minus_U.view(B, H, -1, C, V))
    scale = resolve_scale(scale, K)
    if scale != 1:
        o = o * scale
    return from_chunks(o, T).to(q.dtype), S.view(B, H, K, V) if output_final_state else None
