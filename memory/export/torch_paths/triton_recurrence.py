"""``fused_recurrence`` of ``kernels/triton_recurrence.py`` in PyTorch, for an export where triton is absent.

Each combination of decay and delta rule with a chunked PyTorch form takes it. The one without (the delta
rule with a decay per key channel, which no op of the kernels package names) runs as a token loop.
"""

from __future__ import annotations

from torch import Tensor

from kernels.delta_rule.chunk import chunk_delta_rule
from kernels.gated_delta_rule.chunk import chunk_gated_delta_rule
from kernels.gla.chunk import chunk_gla
from kernels.linear_attn.chunk import chunk_linear_attn
from kernels.simple_gla.chunk import chunk_simple_gla
from kernels.utils import compute_dtype, resolve_scale, run_steps


def _channel_gated_delta_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, g_t: Tensor, beta_t: Tensor, state: Tensor,
                              scale: float | None) -> tuple[Tensor, Tensor]:
    """One token of S' = diag(exp(g_t)) S, S_t = S' + k_t (beta_t (v_t - S'^T k_t))^T; g_t: (B, H, K)."""
    dtype = compute_dtype(q_t)
    q, k, v, g, beta = q_t.to(dtype), k_t.to(dtype), v_t.to(dtype), g_t.to(dtype), beta_t.to(dtype)
    state = g.exp().unsqueeze(-1) * state.to(dtype)
    error = v - (k.unsqueeze(-1) * state).sum(-2)  # (B, H, V)
    state = state + k.unsqueeze(-1) * (beta.unsqueeze(-1) * error).unsqueeze(-2)
    o = resolve_scale(scale, q.shape[-1]) * (q.unsqueeze(-1) * state).sum(-2)
    return o.to(q_t.dtype), state


def torch_fused_recurrence(q: Tensor, k: Tensor, v: Tensor, g: Tensor | None = None, beta: Tensor | None = None,
                           scale: float | None = None, initial_state: Tensor | None = None,
                           output_final_state: bool = False, chunk_size: int = 16) -> tuple[Tensor, Tensor | None]:
    """The contract of ``fused_recurrence``; chunk_size, the kernel's interval between saved states, is not used."""
    options = {"scale": scale, "initial_state": initial_state, "output_final_state": output_final_state}
    per_channel = g is not None and g.dim() == 4
    if beta is None:
        if g is None:
            return chunk_linear_attn(q, k, v, **options)
        return chunk_gla(q, k, v, g, **options) if per_channel else chunk_simple_gla(q, k, v, g, **options)
    if g is None:
        return chunk_delta_rule(q, k, v, beta, **options)
    if not per_channel:
        return chunk_gated_delta_rule(q, k, v, g, beta, **options)
    return run_steps(_channel_gated_delta_step, q, k, v, (g, beta), scale, initial_state, output_final_state)
