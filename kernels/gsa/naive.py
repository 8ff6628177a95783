"""Gated Slot Attention as a token loop (the ground truth) and its single-token step."""

import torch
from torch import Tensor

from ..utils import check_qkv, check_shape, compute_dtype, resolve_scale, step_loop

GSAState = tuple[Tensor, Tensor]  # (key slots (B, H, M, K), value slots (B, H, M, V))


def check_gsa_inputs(q: Tensor, k: Tensor, v: Tensor, s: Tensor, g: Tensor) -> tuple[int, int, int, int, int, int]:
    """Validate the layout of GSA's inputs and return (B, H, T, K, V, M)."""
    B, H, T, K, V = check_qkv(q, k, v)
    if s.dim() != 4:
        raise ValueError(f"s must be (B, H, T, M), got {tuple(s.shape)}")
    M = s.shape[-1]
    check_shape("s", s, (B, H, T, M))
    check_shape("g", g, (B, H, T, M))
    return B, H, T, K, V, M


def gsa_initial_state(initial_state: GSAState | None, B: int, H: int, M: int, K: int, V: int,
                      like: Tensor, dtype: torch.dtype) -> GSAState:
    """The pair of slot matrices to start from: the given one (cast to dtype) or zeros."""
    if initial_state is None:
        return like.new_zeros(B, H, M, K, dtype=dtype), like.new_zeros(B, H, M, V, dtype=dtype)
    key_slots, value_slots = initial_state
    check_shape("initial_state[0] (key slots)", key_slots, (B, H, M, K))
    check_shape("initial_state[1] (value slots)", value_slots, (B, H, M, V))
    return key_slots.to(dtype), value_slots.to(dtype)


def gsa_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, s_t: Tensor, g_t: Tensor, state: GSAState,
             scale: float | None = None) -> tuple[Tensor, GSAState]:
    """One token of Gated Slot Attention over M slots:

        Ks_t = diag(exp(g_t)) Ks_{t-1} + s_t k_t^T        (M, K)
        Vs_t = diag(exp(g_t)) Vs_{t-1} + s_t v_t^T        (M, V)
        o_t  = Vs_t^T softmax(scale * Ks_t q_t)

    q_t, k_t: (B, H, K); v_t: (B, H, V); s_t (write strength, 1 - exp(g_t) in the paper) and g_t
    (log forget gate <= 0): (B, H, M); state: (key slots (B, H, M, K), value slots (B, H, M, V)).
    """
    dtype = compute_dtype(q_t)
    q, k, v, s, g = (x.to(dtype) for x in (q_t, k_t, v_t, s_t, g_t))
    key_slots, value_slots = (x.to(dtype) for x in state)
    alpha = g.exp().unsqueeze(-1)  # (B, H, M, 1)
    key_slots = alpha * key_slots + s.unsqueeze(-1) * k.unsqueeze(-2)
    value_slots = alpha * value_slots + s.unsqueeze(-1) * v.unsqueeze(-2)
    scores = resolve_scale(scale, q.shape[-1]) * (key_slots * q.unsqueeze(-2)).sum(-1)  # (B, H, M)
    o = (scores.softmax(-1).unsqueeze(-1) * value_slots).sum(-2)  # (B, H, V)
    return o.to(q_t.dtype), (key_slots, value_slots)


def naive_recurrent_gsa(q: Tensor, k: Tensor, v: Tensor, s: Tensor, g: Tensor, scale: float | None = None,
                        initial_state: GSAState | None = None,
                        output_final_state: bool = False) -> tuple[Tensor, GSAState | None]:
    """Token-by-token GSA; q, k: (B, H, T, K), v: (B, H, T, V), s, g: (B, H, T, M).

    Returns (o (B, H, T, V), (key slots (B, H, M, K), value slots (B, H, M, V)) or None).
    """
    B, H, T, K, V, M = check_gsa_inputs(q, k, v, s, g)
    state = gsa_initial_state(initial_state, B, H, M, K, V, q, compute_dtype(q))
    if T == 0:
        return q.new_zeros(B, H, 0, V), state if output_final_state else None
    return step_loop(gsa_step, q, k, v, (s, g), scale, state, output_final_state)
