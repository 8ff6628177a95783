"""Linear attention as a token loop (the ground truth) and its single-token step."""

from torch import Tensor

from ..utils import compute_dtype, resolve_scale, run_steps


def linear_attn_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, state: Tensor,
                     scale: float | None = None) -> tuple[Tensor, Tensor]:
    """One token of S_t = S_{t-1} + k_t v_t^T, o_t = scale * S_t^T q_t.

    q_t, k_t: (B, H, K); v_t: (B, H, V); state: (B, H, K, V). Returns (o_t (B, H, V), new state).
    """
    dtype = compute_dtype(q_t)
    q, k, v = q_t.to(dtype), k_t.to(dtype), v_t.to(dtype)
    state = state.to(dtype) + k.unsqueeze(-1) * v.unsqueeze(-2)
    o = resolve_scale(scale, q.shape[-1]) * (q.unsqueeze(-1) * state).sum(-2)
    return o.to(q_t.dtype), state


def naive_recurrent_linear_attn(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None,
                                initial_state: Tensor | None = None,
                                output_final_state: bool = False) -> tuple[Tensor, Tensor | None]:
    """Token-by-token linear attention in at least float32. q, k: (B, H, T, K); v: (B, H, T, V)."""
    return run_steps(linear_attn_step, q, k, v, (), scale, initial_state, output_final_state)
