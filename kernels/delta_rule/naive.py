"""The delta rule (DeltaNet) as a token loop (the ground truth) and its single-token step."""

from torch import Tensor

from ..utils import compute_dtype, resolve_scale, run_steps


def delta_rule_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, beta_t: Tensor, state: Tensor,
                    scale: float | None = None) -> tuple[Tensor, Tensor]:
    """One token of S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = scale * S_t^T q_t.

    Written as S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T. q_t, k_t: (B, H, K);
    v_t: (B, H, V); beta_t: (B, H); state: (B, H, K, V).
    """
    dtype = compute_dtype(q_t)
    q, k, v, beta = q_t.to(dtype), k_t.to(dtype), v_t.to(dtype), beta_t.to(dtype)
    state = state.to(dtype)
    error = v - (k.unsqueeze(-1) * state).sum(-2)  # (B, H, V)
    state = state + k.unsqueeze(-1) * (beta.unsqueeze(-1) * error).unsqueeze(-2)
    o = resolve_scale(scale, q.shape[-1]) * (q.unsqueeze(-1) * state).sum(-2)
    return o.to(q_t.dtype), state


def naive_recurrent_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None = None,
                               initial_state: Tensor | None = None,
                               output_final_state: bool = False) -> tuple[Tensor, Tensor | None]:
    """Token-by-token delta rule; beta: (B, H, T). Keys are used as given (not normalized)."""
    return run_steps(delta_rule_step, q, k, v, (beta,), scale, initial_state, output_final_state)
