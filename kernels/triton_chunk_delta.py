"""Chunked Triton kernels for the delta rule and the gated delta rule, forward and backward, with tl.dot.

    S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T      o_t = scale * S_t^T q_t

with a_t = exp(g_t) per head (the gated delta rule) or 1 (the delta rule). Inside a chunk of C tokens
with entering state S and cumulative log-decays b_t (b_t - b_s <= 0 for t >= s), the WY/UT form of
``kernels/delta_rule/README.md`` reads, with D_ts = exp(b_t - b_s) for t >= s and 0 above:

    A = strictly_lower(diag(beta) K K^T * D)      T = (I + A)^-1        (forward substitution)
    w = T diag(beta e^b) K        u = T diag(beta) V                   (prep kernel, every chunk at once)
    U = u - w S                                                        (state kernel, chunks in order)
    S_next = e^{b_C} S + (K * e^{b_C - b})^T U
    O = diag(scale e^b) Q S + (scale Q K^T * D) U                      (output kernel, every chunk at once)

Every exponent is a difference b_t - b_s with t >= s, or b_t itself, so nothing overflows however strong
the decay (per-step log-decays are floored at LOG_DECAY_FLOOR first, as in the PyTorch chunked form).

The backward mirrors it. A reverse pass over chunks (one program per (batch*head, value block)) carries
dS = dL/dS_next back and stores it per chunk, with the gradient of U:

    dU = (scale Q K^T * D)^T dO + (K * e^{b_C - b}) dS
    dS <- e^{b_C} dS + (scale e^b Q)^T dO - w^T dU

then one program per chunk forms every input gradient from dO, dU, S and dS through U, w, u and T
(dA = -T^T dT T^T on the strictly lower triangle). The gradient of g is built without cancellation:
each term's derivative with respect to the per-step g_j counts only the factors whose exponent spans
step j (pairs s < j <= t, tails s < j, heads t >= j), so with strong decay the tiny true gradient is
not buried under rounding of O(1) terms that cancel.

Every tile is at least 16 wide in each dimension (tl.dot's minimum), masked where T, K or V are ragged,
and offsets are int64 (B * H * T * K may pass 2^31).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels.runtime import use_interpreter_without_gpu
from kernels.utils import LOG_DECAY_FLOOR, check_qkv, check_shape

use_interpreter_without_gpu()

import triton  # noqa: E402 - after choosing compiled or interpreted kernels
import triton.language as tl  # noqa: E402

CHUNK_SIZE = 16  # tokens per chunk: the smallest tile tl.dot accepts; C x C work grows with it


@triton.jit
def _chunk_log_decay(g, i_bh, t0, T, BT: tl.constexpr, GATED: tl.constexpr, FLOOR: tl.constexpr):
    """Cumulative log-decay b (BT,) since the chunk's start, inclusive, and b at the chunk's last row.

    Rows past T load g = 0, so there b equals b at the last real token: the chunk-end decay of a short
    last chunk is the one of its real tokens."""
    o_t = tl.arange(0, BT)
    if GATED:
        g_c = tl.load(g + i_bh * T + t0 + o_t, mask=t0 + o_t < T, other=0.0).to(tl.float32)
        b = tl.cumsum(tl.maximum(g_c, FLOOR), axis=0)
    else:
        b = tl.zeros([BT], dtype=tl.float32)
    b_last = tl.sum(tl.where(o_t == BT - 1, b, 0.0), axis=0)
    return b, b_last


@triton.jit
def _pair_decay(b, BT: tl.constexpr):
    """D_ts = exp(b_t - b_s) for t >= s, 0 above the diagonal; the exponent is masked before exp."""
    o_t = tl.arange(0, BT)
    keep = o_t[:, None] >= o_t[None, :]
    return tl.where(keep, tl.exp(tl.where(keep, b[:, None] - b[None, :], 0.0)), 0.0)


@triton.jit
def _invert_unit_lower(A, BT: tl.constexpr):
    """(I + A)^-1 for strictly lower A (BT, BT), by forward substitution in registers.

    Row i of the inverse is e_i - sum_{j<i} A_ij T_j; rows are filled top down, each from the rows
    already done, so the loop holds T - I with -A in the rows not reached yet."""
    o_t = tl.arange(0, BT)
    Tm = -tl.where(o_t[:, None] > o_t[None, :], A, 0.0)
    for i in range(1, BT):
        is_row = o_t == i
        row = tl.sum(tl.where(is_row[:, None], Tm, 0.0), axis=0)
        row = row + tl.where(o_t < i, tl.sum(row[:, None] * Tm, axis=0), 0.0)
        Tm = tl.where(is_row[:, None], row[None, :], Tm)
    return Tm + (o_t[:, None] == o_t[None, :]).to(tl.float32)


@triton.jit
def chunk_delta_prep_kernel(k, v, g, beta, w, u, tinv, T, K, V, BT: tl.constexpr, BK: tl.constexpr,
                            BV: tl.constexpr, GATED: tl.constexpr, FLOOR: tl.constexpr):
    """Per chunk: T = (I + A)^-1 into ``tinv``, w = T diag(beta e^b) K and u = T diag(beta) V."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    t0 = i_n * BT
    o_t, o_k = tl.arange(0, BT), tl.arange(0, BK)
    m_t = t0 + o_t < T
    m_tk = m_t[:, None] & (o_k < K)[None, :]
    p_tk = (i_bh * T + t0 + o_t)[:, None] * K + o_k[None, :]
    b_k = tl.load(k + p_tk, mask=m_tk, other=0.0).to(tl.float32)
    b_beta = tl.load(beta + i_bh * T + t0 + o_t, mask=m_t, other=0.0).to(tl.float32)
    b, _ = _chunk_log_decay(g, i_bh, t0, T, BT, GATED, FLOOR)
    A = tl.dot(b_k, tl.trans(b_k)) * _pair_decay(b, BT) * b_beta[:, None]
    Tm = _invert_unit_lower(A, BT)
    tl.store(tinv + (i_bh * tl.cdiv(T, BT) + i_n) * BT * BT + o_t[:, None] * BT + o_t[None, :], Tm)
    tl.store(w + p_tk, tl.dot(Tm, b_k * (b_beta * tl.exp(b))[:, None]), mask=m_tk)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_tv = m_t[:, None] & (o_v < V)[None, :]
        p_tv = (i_bh * T + t0 + o_t)[:, None] * V + o_v[None, :]
        b_v = tl.load(v + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        tl.store(u + p_tv, tl.dot(Tm, b_v * b_beta[:, None]), mask=m_tv)


@triton.jit
def chunk_delta_fwd_state_kernel(k, g, w, u, h0, ht, states, T, K, V, BT: tl.constexpr, BK: tl.constexpr,
                                 BV: tl.constexpr, GATED: tl.constexpr, FLOOR: tl.constexpr,
                                 USE_H0: tl.constexpr, STORE_HT: tl.constexpr):
    """Walks the chunks in order for one (batch*head, value block): stores each entering state and
    overwrites u with U = u - w S (the pseudo-values the outputs and the backward use)."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_t, o_k = tl.arange(0, BT), tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_kv = o_k[:, None] * V + o_v[None, :]  # this block's offsets in one (K, V) state
    S = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        S += tl.load(h0 + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    N = tl.cdiv(T, BT)
    for i_n in range(0, N):
        t0 = i_n * BT
        tl.store(states + (i_bh * N + i_n) * K * V + p_kv, S, mask=m_kv)
        m_t = t0 + o_t < T
        m_tk, m_tv = m_t[:, None] & m_k[None, :], m_t[:, None] & m_v[None, :]
        p_tk = (i_bh * T + t0 + o_t)[:, None] * K + o_k[None, :]
        p_tv = (i_bh * T + t0 + o_t)[:, None] * V + o_v[None, :]
        b_k = tl.load(k + p_tk, mask=m_tk, other=0.0).to(tl.float32)
        b_w = tl.load(w + p_tk, mask=m_tk, other=0.0)
        b_u = tl.load(u + p_tv, mask=m_tv, other=0.0) - tl.dot(b_w, S)
        tl.store(u + p_tv, b_u, mask=m_tv)
        b, b_last = _chunk_log_decay(g, i_bh, t0, T, BT, GATED, FLOOR)
        k_to_end = b_k * tl.exp(b_last - b)[:, None]
        S = S * tl.exp(b_last) + tl.dot(tl.trans(k_to_end), b_u)
    if STORE_HT:
        tl.store(ht + i_bh * K * V + p_kv, S, mask=m_kv)


@triton.jit
def chunk_delta_fwd_o_kernel(q, k, g, v_new, states, o, scale, T, K, V, BT: tl.constexpr, BK: tl.constexpr,
                             BV: tl.constexpr, GATED: tl.constexpr, FLOOR: tl.constexpr):
    """O = diag(scale e^b) Q S + (scale Q K^T * D) U for one chunk and value block."""
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    t0 = i_n * BT
    o_t, o_k = tl.arange(0, BT), tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_t, m_k, m_v = t0 + o_t < T, o_k < K, o_v < V
    m_tk, m_tv = m_t[:, None] & m_k[None, :], m_t[:, None] & m_v[None, :]
    p_tk = (i_bh * T + t0 + o_t)[:, None] * K + o_k[None, :]
    p_tv = (i_bh * T + t0 + o_t)[:, None] * V + o_v[None, :]
    b_q = tl.load(q + p_tk, mask=m_tk, other=0.0).to(tl.float32)
    b_k = tl.load(k + p_tk, mask=m_tk, other=0.0).to(tl.float32)
    b_u = tl.load(v_new + p_tv, mask=m_tv, other=0.0)
    S = tl.load(states + (i_bh * tl.cdiv(T, BT) + i_n) * K * V + o_k[:, None] * V + o_v[None, :],
                mask=m_k[:, None] & m_v[None, :], other=0.0)
    b, _ = _chunk_log_decay(g, i_bh, t0, T, BT, GATED, FLOOR)
    M = tl.dot(b_q, tl.trans(b_k)) * _pair_decay(b, BT) * scale
    b_o = tl.dot(b_q * (scale * tl.exp(b))[:, None], S) + tl.dot(M, b_u)
    tl.store(o + p_tv, b_o.to(o.dtype.element_ty), mask=m_tv)


@triton.jit
def chunk_delta_bwd_state_kernel(q, k, g, w, do, dht, dstates, dv_new, dh0, scale, T, K, V, BT: tl.constexpr,
                                 BK: tl.constexpr, BV: tl.constexpr, GATED: tl.constexpr, FLOOR: tl.constexpr,
                                 USE_DHT: tl.constexpr, USE_H0: tl.constexpr):
    """Walks the chunks in reverse for one (batch*head, value block): stores dL/dS_next per chunk in
    ``dstates`` and the gradient of U in ``dv_new``; the gradient left at the start is dL/dh0."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_t, o_k = tl.arange(0, BT), tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_kv = o_k[:, None] * V + o_v[None, :]
    dS = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        dS += tl.load(dht + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    N = tl.cdiv(T, BT)
    for i_r in range(0, N):
        i_n = N - 1 - i_r
        t0 = i_n * BT
        tl.store(dstates + (i_bh * N + i_n) * K * V + p_kv, dS, mask=m_kv)
        m_t = t0 + o_t < T
        m_tk, m_tv = m_t[:, None] & m_k[None, :], m_t[:, None] & m_v[None, :]
        p_tk = (i_bh * T + t0 + o_t)[:, None] * K + o_k[None, :]
        p_tv = (i_bh * T + t0 + o_t)[:, None] * V + o_v[None, :]
        b_q = tl.load(q + p_tk, mask=m_tk, other=0.0).to(tl.float32)
        b_k = tl.load(k + p_tk, mask=m_tk, other=0.0).to(tl.float32)
        b_w = tl.load(w + p_tk, mask=m_tk, other=0.0)
        b_do = tl.load(do + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        b, b_last = _chunk_log_decay(g, i_bh, t0, T, BT, GATED, FLOOR)
        M = tl.dot(b_q, tl.trans(b_k)) * _pair_decay(b, BT) * scale
        b_du = tl.dot(tl.trans(M), b_do) + tl.dot(b_k * tl.exp(b_last - b)[:, None], dS)
        tl.store(dv_new + p_tv, b_du, mask=m_tv)
        q_from_start = b_q * (scale * tl.exp(b))[:, None]
        dS = dS * tl.exp(b_last) + tl.dot(tl.trans(q_from_start), b_do) - tl.dot(tl.trans(b_w), b_du)
    if USE_H0:
        tl.store(dh0 + i_bh * K * V + p_kv, dS, mask=m_kv)


@triton.jit
def chunk_delta_bwd_grad_kernel(q, k, v, g, beta, tinv, states, dstates, v_new, dv_new, do, dq, dk, dv, dg, dbeta,
                                scale, T, K, V, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                                GATED: tl.constexpr, FLOOR: tl.constexpr):
    """Every input gradient of one chunk; value blocks are walked inside the program, so gradients that
    sum over value columns (dq, dk, dbeta, dg) need no atomics."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    N = tl.cdiv(T, BT)
    t0 = i_n * BT
    o_t, o_k = tl.arange(0, BT), tl.arange(0, BK)
    m_t, m_k = t0 + o_t < T, o_k < K
    m_tk = m_t[:, None] & m_k[None, :]
    p_tk = (i_bh * T + t0 + o_t)[:, None] * K + o_k[None, :]
    b_q = tl.load(q + p_tk, mask=m_tk, other=0.0).to(tl.float32)
    b_k = tl.load(k + p_tk, mask=m_tk, other=0.0).to(tl.float32)
    b_beta = tl.load(beta + i_bh * T + t0 + o_t, mask=m_t, other=0.0).to(tl.float32)
    Tm = tl.load(tinv + (i_bh * N + i_n) * BT * BT + o_t[:, None] * BT + o_t[None, :])
    b, b_last = _chunk_log_decay(g, i_bh, t0, T, BT, GATED, FLOOR)
    D = _pair_decay(b, BT)
    strict = o_t[:, None] > o_t[None, :]
    KK = tl.dot(b_k, tl.trans(b_k))
    M = tl.dot(b_q, tl.trans(b_k)) * D * scale

    # Products that sum over value columns, accumulated block by block.
    dq_from_start = tl.zeros([BT, BK], dtype=tl.float32)  # dL/d(scale e^b Q) = dO S^T
    dk_to_end = tl.zeros([BT, BK], dtype=tl.float32)  # dL/d(K e^{b_C - b}) = U dS^T
    dw = tl.zeros([BT, BK], dtype=tl.float32)  # -dU S^T
    dM = tl.zeros([BT, BT], dtype=tl.float32)  # dO U^T
    dT = tl.zeros([BT, BT], dtype=tl.float32)  # dU (diag(beta) V)^T, then + dw (diag(beta e^b) K)^T
    dbeta_acc = tl.zeros([BT], dtype=tl.float32)
    state_dot = tl.zeros([BK], dtype=tl.float32)  # sum(S * dS) by key row
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv = m_t[:, None] & m_v[None, :]
        p_tv = (i_bh * T + t0 + o_t)[:, None] * V + o_v[None, :]
        p_kv = (i_bh * N + i_n) * K * V + o_k[:, None] * V + o_v[None, :]
        S = tl.load(states + p_kv, mask=m_k[:, None] & m_v[None, :], other=0.0)
        dS = tl.load(dstates + p_kv, mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_u = tl.load(v_new + p_tv, mask=m_tv, other=0.0)
        b_du = tl.load(dv_new + p_tv, mask=m_tv, other=0.0)
        b_do = tl.load(do + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        b_v = tl.load(v + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        dq_from_start += tl.dot(b_do, tl.trans(S))
        dk_to_end += tl.dot(b_u, tl.trans(dS))
        dw -= tl.dot(b_du, tl.trans(S))
        dM += tl.dot(b_do, tl.trans(b_u))
        dT += tl.dot(b_du, tl.trans(b_v * b_beta[:, None]))
        dv_scaled = tl.dot(tl.trans(Tm), b_du)  # dL/d(diag(beta) V)
        tl.store(dv + p_tv, dv_scaled * b_beta[:, None], mask=m_tv)
        dbeta_acc += tl.sum(dv_scaled * b_v, axis=1)
        state_dot += tl.sum(S * dS, axis=1)

    # Through w = T diag(beta e^b) K and T = (I + A)^-1, A = strictly_lower(diag(beta) K K^T * D).
    e_b = tl.exp(b)
    to_end = tl.exp(b_last - b)
    dT += tl.dot(dw, tl.trans(b_k * (b_beta * e_b)[:, None]))
    dk_scaled = tl.dot(tl.trans(Tm), dw)  # dL/d(diag(beta e^b) K)
    dA = -tl.dot(tl.dot(tl.trans(Tm), dT), tl.trans(Tm))
    dA = tl.where(strict, dA, 0.0)
    D_strict = tl.where(strict, D, 0.0)
    dKK = dA * D_strict * b_beta[:, None]
    dQK = dM * D * scale
    b_dq = dq_from_start * (scale * e_b)[:, None] + tl.dot(dQK, b_k)
    b_dk = (tl.dot(tl.trans(dQK), b_q) + dk_to_end * to_end[:, None] + dk_scaled * (b_beta * e_b)[:, None]
            + tl.dot(dKK, b_k) + tl.dot(tl.trans(dKK), b_k))
    k_dot = tl.sum(dk_scaled * b_k, axis=1)
    pair_dA = dA * KK * D_strict  # dL/dA * dA/dbeta, by entry
    b_dbeta = dbeta_acc + e_b * k_dot + tl.sum(pair_dA, axis=1)
    tl.store(dq + p_tk, b_dq, mask=m_tk)
    tl.store(dk + p_tk, b_dk, mask=m_tk)
    tl.store(dbeta + i_bh * T + t0 + o_t, b_dbeta, mask=m_t)
    if GATED:
        # d/dg_j: e^{b_t} factors span j when t >= j, e^{b_C - b_s} when s < j, D_ts when s < j <= t,
        # and the chunk's whole decay e^{b_C} always.
        head = tl.sum(dq_from_start * b_q, axis=1) * (scale * e_b) + k_dot * b_beta * e_b
        tail = tl.sum(dk_to_end * b_k, axis=1) * to_end
        pair = dM * M + pair_dA * b_beta[:, None]
        later = (o_t[None, :] >= o_t[:, None]).to(tl.float32)  # later[j, t] = t >= j
        spans = tl.dot(later, pair)  # spans[j, s] = sum_{t >= j} pair[t, s]
        before = o_t[None, :] < o_t[:, None]  # s < j
        b_dg = (tl.sum(later * head[None, :], axis=1) + tl.sum(tl.where(before, tail[None, :], 0.0), axis=1)
                + tl.sum(tl.where(before, spans, 0.0), axis=1) + tl.exp(b_last) * tl.sum(state_dot, axis=0))
        g_c = tl.load(g + i_bh * T + t0 + o_t, mask=m_t, other=0.0).to(tl.float32)
        tl.store(dg + i_bh * T + t0 + o_t, tl.where(g_c >= FLOOR, b_dg, 0.0), mask=m_t)


def _block_sizes(K: int, V: int) -> tuple[int, int]:
    """The whole key dimension in one block, every tile at least 16 wide (tl.dot's minimum); value
    columns in blocks of 16 or 32 on a GPU (register pressure) and up to 64 under the interpreter."""
    BK = max(16, triton.next_power_of_2(K))
    cap = (32 if BK <= 64 else 16) if torch.cuda.is_available() else 64
    return BK, max(16, min(triton.next_power_of_2(V), cap))


class ChunkDeltaRecurrence(torch.autograd.Function):
    """Autograd for ``chunked_delta_recurrence``; inputs are contiguous, g and h0 may be None."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, h0, scale, chunk_size, output_final_state):
        B, H, T, K = q.shape
        V = v.shape[-1]
        BK, BV = _block_sizes(K, V)
        N = triton.cdiv(T, chunk_size)
        f32 = {"dtype": torch.float32}
        w = q.new_empty(B, H, T, K, **f32)
        v_new = q.new_empty(B, H, T, V, **f32)  # u, then overwritten by U = u - w S
        tinv = q.new_empty(B * H, N, chunk_size, chunk_size, **f32)
        states = q.new_empty(B * H, N, K, V, **f32)
        o = torch.empty_like(v, dtype=q.dtype)
        ht = q.new_empty(B, H, K, V, **f32) if output_final_state else None
        g_arg = g if g is not None else beta
        common = {"BT": chunk_size, "BK": BK, "BV": BV, "GATED": g is not None, "FLOOR": LOG_DECAY_FLOOR}
        chunk_delta_prep_kernel[(N, B * H)](k, v, g_arg, beta, w, v_new, tinv, T, K, V, **common)
        chunk_delta_fwd_state_kernel[(triton.cdiv(V, BV), B * H)](
            k, g_arg, w, v_new, h0 if h0 is not None else q, ht if ht is not None else q, states, T, K, V,
            USE_H0=h0 is not None, STORE_HT=output_final_state, **common)
        chunk_delta_fwd_o_kernel[(triton.cdiv(V, BV), N, B * H)](q, k, g_arg, v_new, states, o, scale, T, K, V,
                                                                 **common)
        ctx.save_for_backward(q, k, v, g, beta, h0, w, v_new, tinv, states)
        ctx.scale, ctx.chunk_size = scale, chunk_size
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, beta, h0, w, v_new, tinv, states = ctx.saved_tensors
        B, H, T, K = q.shape
        V = v.shape[-1]
        BK, BV = _block_sizes(K, V)
        N = triton.cdiv(T, ctx.chunk_size)
        f32 = {"dtype": torch.float32}
        dstates = q.new_empty(B * H, N, K, V, **f32)
        dv_new = q.new_empty(B, H, T, V, **f32)
        dq, dk = q.new_empty(B, H, T, K, **f32), q.new_empty(B, H, T, K, **f32)
        dv = q.new_empty(B, H, T, V, **f32)
        dbeta = q.new_empty(B, H, T, **f32)
        dg = q.new_empty(B, H, T, **f32) if g is not None else None
        dh0 = q.new_empty(B, H, K, V, **f32) if h0 is not None else None
        g_arg = g if g is not None else beta
        common = {"BT": ctx.chunk_size, "BK": BK, "BV": BV, "GATED": g is not None, "FLOOR": LOG_DECAY_FLOOR}
        do = do.contiguous()
        chunk_delta_bwd_state_kernel[(triton.cdiv(V, BV), B * H)](
            q, k, g_arg, w, do, dht.contiguous() if dht is not None else q, dstates, dv_new,
            dh0 if dh0 is not None else dq, ctx.scale, T, K, V, USE_DHT=dht is not None, USE_H0=h0 is not None,
            **common)
        chunk_delta_bwd_grad_kernel[(N, B * H)](
            q, k, v, g_arg, beta, tinv, states, dstates, v_new, dv_new, do, dq, dk, dv,
            dg if dg is not None else dbeta, dbeta, ctx.scale, T, K, V, **common)

        def like(grad, x):
            return None if grad is None else grad.to(x.dtype)

        return (like(dq, q), like(dk, k), like(dv, v), like(dg, g), like(dbeta, beta), like(dh0, h0),
                None, None, None)


def chunked_delta_recurrence(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None = None,
                           scale: float | None = None, initial_state: Tensor | None = None,
                           output_final_state: bool = False,
                           chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """The delta rule (g None) or the gated delta rule (g: (B, H, T) log-decay <= 0), chunked.

    q, k: (B, H, T, K); v: (B, H, T, V); beta: (B, H, T); initial_state: (B, H, K, V); chunk_size: a
    power of two >= 16 (every tl.dot tile is at least 16 wide). Returns (o: (B, H, T, V) in q's dtype,
    final state (B, H, K, V) in float32 or None): the contract of ``naive_recurrent_delta_rule`` and
    ``naive_recurrent_gated_delta_rule``, and of ``fused_recurrence``.
    """
    B, H, T, K, V = check_qkv(q, k, v)
    check_shape("beta", beta, (B, H, T))
    if g is not None and tuple(g.shape) != (B, H, T):
        raise ValueError(f"g must be (B, H, T) = {(B, H, T)} (one decay per head), got {tuple(g.shape)}")
    if initial_state is not None:
        check_shape("initial_state", initial_state, (B, H, K, V))
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16, got {chunk_size}")
    if T == 0 or K == 0 or V == 0:
        raise ValueError(f"T, K and V must be positive, got T={T}, K={K}, V={V}")
    scale = K**-0.5 if scale is None else float(scale)

    def contiguous(x):
        return None if x is None else x.contiguous()

    return ChunkDeltaRecurrence.apply(contiguous(q), contiguous(k), contiguous(v), contiguous(g), contiguous(beta),
                                      contiguous(initial_state), scale, chunk_size, output_final_state)
