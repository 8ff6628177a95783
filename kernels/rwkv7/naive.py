"""RWKV-7's generalized delta rule as a token loop (the ground truth) and its single-token step, in this
package's column convention (S: (K, V), o = S^T q)."""

from torch import Tensor

from ..utils import compute_dtype, resolve_scale, run_steps


def rwkv7_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, g_t: Tensor, kappa_t: Tensor, a_t: Tensor, state: Tensor,
               scale: float | None = None) -> tuple[Tensor, Tensor]:
    """One token of S_t = (diag(exp(g_t)) - (a_t * kappa_t) kappa_t^T) S_{t-1} + k_t v_t^T, o_t = scale * S_t^T q_t.

    Written as S_t = exp(g_t) * S_{t-1} - (a_t * kappa_t) (kappa_t^T S_{t-1}) + k_t v_t^T: the removal
    reads the state before it decays. q_t (the receptance r), k_t (the replacement key k~), kappa_t
    (the removal key, unit norm in RWKV-7), a_t (the in-context learning rate), g_t (log of the decay
    w_t, <= 0): (B, H, K); v_t: (B, H, V); state: (B, H, K, V).
    """
    dtype = compute_dtype(q_t)
    q, k, v, g = q_t.to(dtype), k_t.to(dtype), v_t.to(dtype), g_t.to(dtype)
    kappa, a = kappa_t.to(dtype), a_t.to(dtype)
    state = state.to(dtype)
    read = (kappa.unsqueeze(-1) * state).sum(-2)  # kappa^T S_{t-1}: (B, H, V)
    state = (g.exp().unsqueeze(-1) * state - (a * kappa).unsqueeze(-1) * read.unsqueeze(-2)
             + k.unsqueeze(-1) * v.unsqueeze(-2))
    o = resolve_scale(scale, q.shape[-1]) * (q.unsqueeze(-1) * state).sum(-2)
    return o.to(q_t.dtype), state


def naive_recurrent_rwkv7(q: Tensor, k: Tensor, v: Tensor, g: Tensor, kappa: Tensor, a: Tensor,
                          scale: float | None = None, initial_state: Tensor | None = None,
                          output_final_state: bool = False) -> tuple[Tensor, Tensor | None]:
    """Token-by-token RWKV-7; g, kappa, a: (B, H, T, K). kappa is used as given (designs L2-normalize it)."""
    return run_steps(rwkv7_step, q, k, v, (g, kappa, a), scale, initial_state, output_final_state)
