"""Chunked Gated Slot Attention: two passes of gated linear attention over the slots, joined by a
softmax; exact, linear in T, pure PyTorch for the first pass and `chunk_gla` for the second."""

import torch
from torch import Tensor

from ..gla.chunk import chunk_gla
from ..utils import (
    chunk_log_decay,
    chunk_state_scan,
    compute_dtype,
    fit_chunk_size,
    from_chunks,
    resolve_scale,
    to_chunks,
)
from .naive import GSAState, check_gsa_inputs, gsa_initial_state

# As for chunk_gla: the largest chunk for which the float64 factorization of the first pass cannot
# overflow (16 * 40 = 640 < 709 = ln(max float64)), and chunk_gla's default for the second pass.
CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 16


def slot_scores(q: Tensor, k: Tensor, s: Tensor, g: Tensor, key_slots: Tensor,
                chunk_size: int) -> tuple[Tensor, Tensor]:
    """The first pass: scores_t = Ks_t q_t with Ks_t = diag(exp(g_t)) Ks_{t-1} + s_t k_t^T.

    q (already scaled), k: (B, H, T, K); s, g: (B, H, T, M); key_slots: (B, H, M, K) entering.
    Returns (scores (B, H, T, M), key slots after the last token (B, H, M, K)), in q's dtype.

    The decay acts on the slot index, which is the output index here (GLA decays the index the
    query contracts): inside a chunk, with b the cumulative log-decay since the chunk start,

        scores_t = exp(b_t) * (Ks q_t) + exp(b_t) * sum_{i <= t} (q_t . k_i) (s_i * exp(-b_i))

    The second sum is one C x C x M product, factored about the chunk start in float64 as in
    chunk_gla (exp(-b) <= e^640 for chunks of 16 with steps floored at -40; README.md).
    """
    T = q.shape[2]
    qc, kc, sc = (to_chunks(x, chunk_size) for x in (q, k, s))  # (B, H, N, C, K|M)
    b = chunk_log_decay(g, chunk_size)  # (B, H, N, C, M), in [C * LOG_DECAY_FLOOR, 0]
    intra = _IntraChunkScores.apply((qc @ kc.transpose(-1, -2)).tril(), sc, b)
    b_last = b[..., -1:, :]  # (B, H, N, 1, M)
    updates = (sc * (b_last - b).exp()).transpose(-1, -2) @ kc  # (B, H, N, M, K)
    states, final = chunk_state_scan(b_last.squeeze(-2).exp(), updates, key_slots)  # (B, H, N, M, K)
    scores = intra + (qc @ states.transpose(-1, -2)) * b.exp()
    return from_chunks(scores, T), final


class _IntraChunkScores(torch.autograd.Function):
    """exp(b) * (tril(Q K^T) @ (s * exp(-b))): the first pass's scores from inside the chunk, one node.

    qk: (..., C, C) lower-triangular; s, b: (..., C, M). The product is factored about the chunk start
    in float64, where exp(-b) <= e^640 is a normal number; the result, with exponents <= 0, returns to
    the inputs' dtype correctly rounded. Row t of qk is exactly zero beyond t, so the future's (finite)
    s_i exp(-b_i) adds exact zeros: row t stays bit-exactly a function of tokens <= t. The backward is
    written out: autograd through the same expression records a dozen nodes, each a full pass over
    float64 memory, and their casts.
    """

    @staticmethod
    def forward(ctx, qk: Tensor, s: Tensor, b: Tensor) -> Tensor:
        E = b.to(torch.float64, copy=True).exp_()  # exp(b) <= 1, >= e^-640
        Y = s.to(torch.float64).div(E)  # s exp(-b); its adjoint below is the same division
        out = torch.matmul(qk.to(torch.float64), Y).mul_(E)
        ctx.save_for_backward(qk, E, Y, out)
        ctx.dtypes = (s.dtype, b.dtype)
        return out.to(s.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        qk, E, Y, out = ctx.saved_tensors
        G = grad.to(torch.float64)
        GX = G * E  # the adjoint of the float64 product, before exp(b)
        # [t, i] = sum_m G_t exp(b_t - b_i) s_i: exponents <= 0 where kept, finite (<= e^640) where tril drops
        grad_qk = torch.matmul(GX, Y.transpose(-1, -2)).tril_().to(qk.dtype)
        GY = torch.matmul(qk.to(torch.float64).transpose(-1, -2), GX)  # (..., C, M)
        grad_s = (GY / E).to(ctx.dtypes[0])
        # b enters twice: exp(b) outside (adjoint G * out) and exp(-b) inside (adjoint -GY * Y)
        grad_b = (G * out).sub_(GY * Y).to(ctx.dtypes[1])
        return grad_qk, grad_s, grad_b


def chunk_gsa(q: Tensor, k: Tensor, v: Tensor, s: Tensor, g: Tensor, scale: float | None = None,
              initial_state: GSAState | None = None, output_final_state: bool = False,
              chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, GSAState | None]:
    """Same contract as `naive_recurrent_gsa`; s, g: (B, H, T, M), g <= 0; chunk_size <= 16.

    Pass 1 (this file) gives the slot scores Ks_t q_t, a softmax over the M slots turns them into
    read weights, and pass 2 is `chunk_gla` with those weights as queries, s as keys, v as values
    and the same gate (Triton on a GPU). Exact for any g (per-step log-decays are floored at
    LOG_DECAY_FLOOR, far below float32 resolution) and bit-exactly causal; README.md derives it.
    """
    B, H, T, K, V, M = check_gsa_inputs(q, k, v, s, g)
    if chunk_size > MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_gsa needs chunk_size <= {MAX_CHUNK_SIZE} (float64 exponent range), "
                         f"got {chunk_size}")
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    key_slots, value_slots = gsa_initial_state(initial_state, B, H, M, K, V, q, dtype)
    s, g = s.to(dtype), g.to(dtype)
    scores, key_slots = slot_scores(q.to(dtype) * resolve_scale(scale, K), k.to(dtype), s, g, key_slots, C)
    o, value_slots = chunk_gla(scores.softmax(-1), s, v.to(dtype), g, scale=1.0, initial_state=value_slots,
                               output_final_state=True, chunk_size=C)
    return o.to(q.dtype), (key_slots, value_slots) if output_final_state else None
