"""Gated linear attention with a per-key-channel decay as a token loop and a single step."""

from torch import Tensor

from ..utils import compute_dtype, resolve_scale, run_steps


def gla_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, g_t: Tensor, state: Tensor,
             scale: float | None = None) -> tuple[Tensor, Tensor]:
    """One token of S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = scale * S_t^T q_t.

    q_t, k_t, g_t: (B, H, K) with g_t <= 0; v_t: (B, H, V); state: (B, H, K, V).
    """
    dtype = compute_dtype(q_t)
    q, k, v, g = q_t.to(dtype), k_t.to(dtype), v_t.to(dtype), g_t.to(dtype)
    state = g.exp().unsqueeze(-1) * state.to(dtype) + k.unsqueeze(-1) * v.unsqueeze(-2)
    o = resolve_scale(scale, q.shape[-1]) * (q.unsqueeze(-1) * state).sum(-2)
    return o.to(q_t.dtype), state


def naive_recurrent_gla(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None,
                        initial_state: Tensor | None = None,
                        output_final_state: bool = False) -> tuple[Tensor, Tensor | None]:
    """Token-by-token GLA; g: (B, H, T, K)."""
    return run_steps(gla_step, q, k, v, (g,), scale, initial_state, output_final_state)
