"""Kimi Delta Attention (the gated delta rule with a per-key-channel decay) as a token loop (the
ground truth) and its single-token step."""

from torch import Tensor

from ..utils import compute_dtype, resolve_scale, run_steps


def kda_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, g_t: Tensor, beta_t: Tensor, state: Tensor,
             scale: float | None = None) -> tuple[Tensor, Tensor]:
    """One token of S_t = (I - beta_t k_t k_t^T) diag(exp(g_t)) S_{t-1} + beta_t k_t v_t^T.

    Written as S' = diag(exp(g_t)) S_{t-1}, S_t = S' + beta_t k_t (v_t - S'^T k_t)^T; o_t = scale * S_t^T q_t.
    q_t, k_t: (B, H, K); v_t: (B, H, V); g_t: (B, H, K) log-decay <= 0 per key channel; beta_t: (B, H).
    """
    dtype = compute_dtype(q_t)
    q, k, v, g, beta = q_t.to(dtype), k_t.to(dtype), v_t.to(dtype), g_t.to(dtype), beta_t.to(dtype)
    state = g.exp().unsqueeze(-1) * state.to(dtype)
    error = v - (k.unsqueeze(-1) * state).sum(-2)  # (B, H, V)
    state = state + k.unsqueeze(-1) * (beta.unsqueeze(-1) * error).unsqueeze(-2)
    o = resolve_scale(scale, q.shape[-1]) * (q.unsqueeze(-1) * state).sum(-2)
    return o.to(q_t.dtype), state


def naive_recurrent_kda(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, scale: float | None = None,
                        initial_state: Tensor | None = None,
                        output_final_state: bool = False) -> tuple[Tensor, Tensor | None]:
    """Token-by-token KDA; g: (B, H, T, K), beta: (B, H, T). Keys are used as given (not normalized)."""
    return run_steps(kda_step, q, k, v, (g, beta), scale, initial_state, output_final_state)
