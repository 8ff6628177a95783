"""Chunked Triton kernels for linear attention, simple GLA and GLA, forward and backward, wired into autograd.

    S_t = a_t * S_{t-1} + k_t v_t^T        o_t = scale * S_t^T q_t
    a_t = 1 (DECAY=0), exp(g_t) per head (DECAY=1) or per key channel (DECAY=2)

The chunk-parallel form of ``kernels/<op>/chunk.py`` with every matmul a ``tl.dot``. In a chunk of C
tokens with entering state S, b_i is the log-decay since the chunk's start (inclusive) and L its last token:

    o_i   = scale * ((q_i e^{b_i})^T S + sum_{j <= i} A_ij v_j)     A_ij = sum_c q_ic k_jc e^{b_ic - b_jc}
    S_out = e^{b_L} S + sum_j (k_j e^{b_L - b_j}) v_j^T

Four kernels: ``chunk_fwd_h_kernel`` walks the chunks of one (batch*head, value block) and stores the state
entering each; ``chunk_fwd_o_kernel`` computes the outputs of every chunk in parallel; ``chunk_bwd_dh_kernel``
walks back and stores the gradient of each chunk's exit state (dS_in = e^{b_L} dS_out + scale (q e^b)^T do);
``chunk_bwd_kernel`` computes dq, dk, dv and dg of every chunk in parallel from the two.

Exact for any decay the designs produce, in float32: every exponent is a difference b_i - b_j masked
to i >= j before exp (so <= 0; no e^{-b} factor that overflows), and per-step log-decays are floored
at LOG_DECAY_FLOOR like the PyTorch forms (g = -inf is a hard reset, not a NaN; below the floor dg = 0).
b comes from a cumulative sum, so a factor e^{b_i - b_j} is good to about |b_i| * 6e-8 relative: exact
to rounding for moderate decays, ~1e-6 where a -30 step precedes weak ones in a chunk (as in the PyTorch forms).
With a per-channel decay A is not a mask on q k^T, so A and its gradients are built one column j at a time.

dg is not taken as the usual reverse cumsum of q dq - k dk: that sum telescopes, and where the decay is
strong its partial sums are O(1) while dg_t is O(a_t), so it would be all rounding. Instead
dg_t = <dS_t, a_t S_{t-1}> (summed over values, and over keys for a per-head decay) is split at the cut
between tokens t-1 and t, every term carrying the factor a_t:

    dg_t = e^{b_L} <dS_out, S>  +  sum_{j<t} k_j dk_j^out  +  sum_{i>=t} q_i dq_i^in
           + sum_{i>=t>j} q_i k_j e^{b_i - b_j} dA_ij

where dq^in = scale e^b (do S^T) and dk^out = e^{b_L - b} (v dS_out^T) are the state paths' shares of dq
and dk, and dA = scale do v^T.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels.runtime import use_interpreter_without_gpu
from kernels.utils import LOG_DECAY_FLOOR, check_qkv, check_shape

use_interpreter_without_gpu()

import triton  # noqa: E402 - after choosing compiled or interpreted kernels
import triton.language as tl  # noqa: E402

CHUNK_SIZE = 16  # tokens per chunk; tl.dot needs at least 16 in every dimension


@triton.jit
def _cumulative_decay(g, i_bh, t, m_t, o_k, m_k, T, K, CHUNK: tl.constexpr, DECAY: tl.constexpr,
                      FLOOR: tl.constexpr):
    """b for the chunk's tokens t: (CHUNK, BK) per key channel, (CHUNK,) per head, zeros without decay.
    Padded tokens get log-decay 0, so b at the chunk's last row is b_L of its last real token."""
    if DECAY == 2:
        p_g = g + (i_bh * T + t)[:, None] * K + o_k[None, :]
        b = tl.load(p_g, mask=m_t[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b = tl.cumsum(tl.maximum(b, FLOOR), axis=0)
    elif DECAY == 1:
        b = tl.cumsum(tl.maximum(tl.load(g + i_bh * T + t, mask=m_t, other=0.0).to(tl.float32), FLOOR), axis=0)
    else:
        b = tl.zeros([CHUNK], dtype=tl.float32)
    return b


@triton.jit
def _last_row(b, o_c, CHUNK: tl.constexpr, DECAY: tl.constexpr):
    """b_L: row CHUNK-1 of b, (BK,) per key channel or a scalar per head."""
    if DECAY == 2:
        b_L = tl.sum(tl.where((o_c == CHUNK - 1)[:, None], b, 0.0), axis=0)
    else:
        b_L = tl.sum(tl.where(o_c == CHUNK - 1, b, 0.0), axis=0)
    return b_L


@triton.jit
def _rows(x, e, DECAY: tl.constexpr):
    """x (CHUNK, BK) times per-token decay factors e: (CHUNK, BK) per key channel or (CHUNK,) per head."""
    if DECAY == 2:
        x = x * e
    elif DECAY == 1:
        x = x * e[:, None]
    return x


@triton.jit
def _state_decay(S, e_L, DECAY: tl.constexpr):
    """A (BK, BV) state times the chunk's total decay e^{b_L}: (BK,) per key channel or a scalar."""
    if DECAY == 2:
        S = S * e_L[:, None]
    elif DECAY == 1:
        S = S * e_L
    return S


@triton.jit
def _decay_from(b, b_j, keep):
    """e^{b_i - b_j} for the rows i where keep (i >= j, so the exponent is <= 0), 0 elsewhere; b (CHUNK, BK)."""
    return tl.where(keep[:, None], tl.exp(tl.where(keep[:, None], b - b_j[None, :], 0.0)), 0.0)


@triton.jit
def _row_of(x, at_j):
    """Row j of a (CHUNK, N) tile held in registers, selected by the mask at_j = (o_c == j)."""
    return tl.sum(tl.where(at_j[:, None], x, 0.0), axis=0)


@triton.jit
def _intra_scores(q, k, b, o_c, CHUNK: tl.constexpr, DECAY: tl.constexpr):
    """A (CHUNK, CHUNK): A_ij = sum_c q_ic k_jc e^{b_ic - b_jc} for i >= j, 0 above the diagonal, no scale."""
    causal = o_c[:, None] >= o_c[None, :]
    if DECAY == 2:
        A = tl.zeros([CHUNK, CHUNK], dtype=tl.float32)
        for j in range(0, CHUNK):
            at_j = o_c == j
            column = tl.sum(q * _decay_from(b, _row_of(b, at_j), o_c >= j) * _row_of(k, at_j)[None, :], axis=1)
            A += tl.where(at_j[None, :], column[:, None], 0.0)
    else:
        A = tl.dot(q, tl.trans(k))
        if DECAY == 1:
            A = A * tl.exp(tl.where(causal, b[:, None] - b[None, :], 0.0))
        A = tl.where(causal, A, 0.0)
    return A


@triton.jit
def chunk_fwd_h_kernel(k, v, g, h0, ht, states, T, K, V, BK: tl.constexpr, BV: tl.constexpr,
                       CHUNK: tl.constexpr, DECAY: tl.constexpr, FLOOR: tl.constexpr, USE_H0: tl.constexpr,
                       STORE_HT: tl.constexpr):
    """One program per (value block, batch*head): the state entering every chunk, to ``states``."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_c, o_k = tl.arange(0, CHUNK), tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_kv = o_k[:, None] * V + o_v[None, :]
    S = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        S += tl.load(h0 + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    N = tl.cdiv(T, CHUNK)
    for i_n in range(0, N):
        tl.store(states + (i_bh * N + i_n) * K * V + p_kv, S, mask=m_kv)
        t = i_n * CHUNK + o_c
        m_t = t < T
        k_c = tl.load(k + (i_bh * T + t)[:, None] * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :],
                      other=0.0).to(tl.float32)
        v_c = tl.load(v + (i_bh * T + t)[:, None] * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :],
                      other=0.0).to(tl.float32)
        b = _cumulative_decay(g, i_bh, t, m_t, o_k, m_k, T, K, CHUNK, DECAY, FLOOR)
        b_L = _last_row(b, o_c, CHUNK, DECAY)
        k_out = _rows(k_c, tl.exp(b_L - b), DECAY)  # k_j e^{b_L - b_j}: its weight in the exit state
        S = _state_decay(S, tl.exp(b_L), DECAY) + tl.dot(tl.trans(k_out), v_c)
    if STORE_HT:
        tl.store(ht + i_bh * K * V + p_kv, S, mask=m_kv)


@triton.jit
def chunk_fwd_o_kernel(q, k, v, g, states, o, scale, T, K, V, BK: tl.constexpr, BV: tl.constexpr,
                       CHUNK: tl.constexpr, DECAY: tl.constexpr, FLOOR: tl.constexpr):
    """One program per (chunk, batch*head): o = scale (A v + (q e^b) S), value block by value block."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    N = tl.cdiv(T, CHUNK)
    o_c, o_k = tl.arange(0, CHUNK), tl.arange(0, BK)
    t = i_n * CHUNK + o_c
    m_t, m_k = t < T, o_k < K
    m_tk = m_t[:, None] & m_k[None, :]
    q_c = tl.load(q + (i_bh * T + t)[:, None] * K + o_k[None, :], mask=m_tk, other=0.0).to(tl.float32)
    k_c = tl.load(k + (i_bh * T + t)[:, None] * K + o_k[None, :], mask=m_tk, other=0.0).to(tl.float32)
    b = _cumulative_decay(g, i_bh, t, m_t, o_k, m_k, T, K, CHUNK, DECAY, FLOOR)
    A = _intra_scores(q_c, k_c, b, o_c, CHUNK, DECAY)
    q_in = _rows(q_c, tl.exp(b), DECAY)  # q_i e^{b_i}: how token i reads the entering state
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv = m_t[:, None] & m_v[None, :]
        p_tv = (i_bh * T + t)[:, None] * V + o_v[None, :]
        v_c = tl.load(v + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        S = tl.load(states + (i_bh * N + i_n) * K * V + o_k[:, None] * V + o_v[None, :],
                    mask=m_k[:, None] & m_v[None, :], other=0.0)
        o_blk = scale * (tl.dot(A, v_c) + tl.dot(q_in, S))
        tl.store(o + p_tv, o_blk.to(o.dtype.element_ty), mask=m_tv)


@triton.jit
def chunk_bwd_dh_kernel(q, g, do, dht, dstates, dh0, scale, T, K, V, BK: tl.constexpr, BV: tl.constexpr,
                        CHUNK: tl.constexpr, DECAY: tl.constexpr, FLOOR: tl.constexpr, USE_DHT: tl.constexpr,
                        USE_H0: tl.constexpr):
    """One program per (value block, batch*head), walking back: the gradient w.r.t. every chunk's exit
    state, to ``dstates``; the gradient w.r.t. the initial state, to ``dh0``."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_c, o_k = tl.arange(0, CHUNK), tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_kv = o_k[:, None] * V + o_v[None, :]
    dS = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        dS += tl.load(dht + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    N = tl.cdiv(T, CHUNK)
    for i_r in range(0, N):
        i_n = N - 1 - i_r
        tl.store(dstates + (i_bh * N + i_n) * K * V + p_kv, dS, mask=m_kv)
        t = i_n * CHUNK + o_c
        m_t = t < T
        q_c = tl.load(q + (i_bh * T + t)[:, None] * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :],
                      other=0.0).to(tl.float32)
        do_c = tl.load(do + (i_bh * T + t)[:, None] * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :],
                       other=0.0).to(tl.float32)
        b = _cumulative_decay(g, i_bh, t, m_t, o_k, m_k, T, K, CHUNK, DECAY, FLOOR)
        q_in = _rows(q_c, tl.exp(b), DECAY)
        dS = _state_decay(dS, tl.exp(_last_row(b, o_c, CHUNK, DECAY)), DECAY) + scale * tl.dot(tl.trans(q_in), do_c)
    if USE_H0:
        tl.store(dh0 + i_bh * K * V + p_kv, dS, mask=m_kv)


@triton.jit
def _gla_intra_grads(q, k, b, dA, o_c, CHUNK: tl.constexpr, BK: tl.constexpr):
    """Per key channel, the intra-chunk shares of dq and dk and the cut sums of dg, one column j at a time:

        dq_i += dA_ij e^{b_i - b_j} k_j      dk_j += sum_i dA_ij e^{b_i - b_j} q_i
        cut_t += sum_{i >= t} q_i k_j e^{b_i - b_j} dA_ij   for every t > j
    """
    dq = tl.zeros([CHUNK, BK], dtype=tl.float32)
    dk = tl.zeros([CHUNK, BK], dtype=tl.float32)
    cut = tl.zeros([CHUNK, BK], dtype=tl.float32)
    for j in range(0, CHUNK):
        at_j = o_c == j
        dA_j = tl.sum(tl.where(at_j[None, :], dA, 0.0), axis=1)  # column j: dA_ij over rows i
        Z = dA_j[:, None] * _decay_from(b, _row_of(b, at_j), o_c >= j)
        Y = Z * _row_of(k, at_j)[None, :]
        dq += Y
        dk += tl.where(at_j[:, None], tl.sum(Z * q, axis=0)[None, :], 0.0)
        cut += tl.where((o_c > j)[:, None], tl.cumsum(Y * q, axis=0, reverse=True), 0.0)
    return dq, dk, cut


@triton.jit
def chunk_bwd_kernel(q, k, v, g, do, states, dstates, dq, dk, dv, dg, scale, T, K, V, BK: tl.constexpr,
                     BV: tl.constexpr, CHUNK: tl.constexpr, DECAY: tl.constexpr, FLOOR: tl.constexpr):
    """One program per (chunk, batch*head): dv value block by value block while dA, the state paths'
    shares of dq and dk, and <dS_out, S> accumulate; then the intra-chunk shares, dq, dk and dg."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    N = tl.cdiv(T, CHUNK)
    o_c, o_k = tl.arange(0, CHUNK), tl.arange(0, BK)
    t = i_n * CHUNK + o_c
    m_t, m_k = t < T, o_k < K
    m_tk = m_t[:, None] & m_k[None, :]
    p_tk = (i_bh * T + t)[:, None] * K + o_k[None, :]
    q_c = tl.load(q + p_tk, mask=m_tk, other=0.0).to(tl.float32)
    k_c = tl.load(k + p_tk, mask=m_tk, other=0.0).to(tl.float32)
    b = _cumulative_decay(g, i_bh, t, m_t, o_k, m_k, T, K, CHUNK, DECAY, FLOOR)
    b_L = _last_row(b, o_c, CHUNK, DECAY)
    A = _intra_scores(q_c, k_c, b, o_c, CHUNK, DECAY)
    k_out = _rows(k_c, tl.exp(b_L - b), DECAY)
    dA = tl.zeros([CHUNK, CHUNK], dtype=tl.float32)
    dq_in = tl.zeros([CHUNK, BK], dtype=tl.float32)
    dk_out = tl.zeros([CHUNK, BK], dtype=tl.float32)
    w = tl.zeros([BK], dtype=tl.float32)  # sum over values of dS_out * S, per key channel
    p_state = (i_bh * N + i_n) * K * V + o_k[:, None] * V
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv, m_kv = m_t[:, None] & m_v[None, :], m_k[:, None] & m_v[None, :]
        p_tv = (i_bh * T + t)[:, None] * V + o_v[None, :]
        v_c = tl.load(v + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        do_c = tl.load(do + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        S = tl.load(states + p_state + o_v[None, :], mask=m_kv, other=0.0)
        dS = tl.load(dstates + p_state + o_v[None, :], mask=m_kv, other=0.0)
        dA += tl.dot(do_c, tl.trans(v_c))
        dq_in += tl.dot(do_c, tl.trans(S))
        dk_out += tl.dot(v_c, tl.trans(dS))
        w += tl.sum(S * dS, axis=1)
        tl.store(dv + p_tv, scale * tl.dot(tl.trans(A), do_c) + tl.dot(k_out, dS), mask=m_tv)
    causal = o_c[:, None] >= o_c[None, :]
    dA = tl.where(causal, scale * dA, 0.0)
    dq_in = _rows(scale * dq_in, tl.exp(b), DECAY)
    dk_out = _rows(dk_out, tl.exp(b_L - b), DECAY)
    if DECAY == 2:
        dq_c, dk_c, cut = _gla_intra_grads(q_c, k_c, b, dA, o_c, CHUNK, BK)
    else:
        dAD = dA
        if DECAY == 1:
            dAD = dA * tl.exp(tl.where(causal, b[:, None] - b[None, :], 0.0))
        dq_c = tl.dot(dAD, k_c)
        dk_c = tl.dot(tl.trans(dAD), q_c)
    tl.store(dq + p_tk, dq_c + dq_in, mask=m_tk)
    tl.store(dk + p_tk, dk_c + dk_out, mask=m_tk)
    if DECAY > 0:
        # The four terms of dg_t (module docstring); [t, j] masks give sums over j < t and i >= t.
        before = (o_c[None, :] < o_c[:, None]).to(tl.float32)
        after = (o_c[None, :] >= o_c[:, None]).to(tl.float32)
        if DECAY == 2:
            d = tl.exp(b_L)[None, :] * w[None, :] + tl.dot(before, k_c * dk_out) + tl.dot(after, q_c * dq_in) + cut
            p_g, m_g = p_tk, m_tk
        else:
            # cut_t = sum_{i >= t} sum_{j < t} A_ij dA_ij: a sum over j < t by a matmul, then over i >= t.
            cut = tl.sum(tl.where(causal, tl.dot(A * dA, tl.trans(before)), 0.0), axis=0)
            d = (tl.exp(b_L) * tl.sum(w, axis=0) + tl.sum(before * tl.sum(k_c * dk_out, axis=1)[None, :], axis=1)
                 + tl.sum(after * tl.sum(q_c * dq_in, axis=1)[None, :], axis=1) + cut)
            p_g, m_g = i_bh * T + t, m_t
        # Below the floor the forward used the floor: no gradient reaches g there.
        g_raw = tl.load(g + p_g, mask=m_g, other=0.0).to(tl.float32)
        tl.store(dg + p_g, tl.where(g_raw >= FLOOR, d, 0.0), mask=m_g)


def _block_sizes(K: int, V: int) -> tuple[int, int]:
    """The whole key dimension in one block; value columns in blocks of up to 32 on a GPU (register
    pressure) and 64 under the interpreter (fewer programs to walk in Python). At least 16 each: tl.dot's
    smallest operand."""
    BK = max(16, triton.next_power_of_2(K))
    BV = min(max(16, triton.next_power_of_2(V)), 32 if torch.cuda.is_available() else 64)
    return BK, BV


def _num_warps(BK: int) -> int:
    """8 warps from 64 key channels up, where 4 make ptxas spill the backward's tiles (sm_90, C = 16,
    BV = 32). With 8, only the backward still spills: 36 bytes at K = 64 (per-head decay), 48-716 at
    K = 128, kilobytes at K = 256, since one program holds all K channels of its chunk."""
    return 4 if BK < 64 else 8


def _decay_kind(g: Tensor | None) -> int:
    return 0 if g is None else 1 if g.dim() == 3 else 2


class ChunkRecurrence(torch.autograd.Function):
    """Autograd for ``chunked_recurrence``; inputs are contiguous, g and h0 may be None."""

    @staticmethod
    def forward(ctx, q, k, v, g, h0, scale, chunk_size, output_final_state):
        B, H, T, K = q.shape
        V = v.shape[-1]
        BK, BV = _block_sizes(K, V)
        N = triton.cdiv(T, chunk_size)
        decay = _decay_kind(g)
        o = torch.empty_like(v, dtype=q.dtype)
        ht = q.new_empty(B, H, K, V, dtype=torch.float32) if output_final_state else None
        states = q.new_empty(B * H, N, K, V, dtype=torch.float32)
        g_arg = g if g is not None else q
        chunk_fwd_h_kernel[(triton.cdiv(V, BV), B * H)](
            k, v, g_arg, h0 if h0 is not None else q, ht if ht is not None else q, states, T, K, V,
            BK=BK, BV=BV, CHUNK=chunk_size, DECAY=decay, FLOOR=LOG_DECAY_FLOOR, USE_H0=h0 is not None,
            STORE_HT=output_final_state, num_warps=_num_warps(BK))
        chunk_fwd_o_kernel[(N, B * H)](
            q, k, v, g_arg, states, o, scale, T, K, V, BK=BK, BV=BV, CHUNK=chunk_size, DECAY=decay,
            FLOOR=LOG_DECAY_FLOOR, num_warps=_num_warps(BK))
        ctx.save_for_backward(q, k, v, g, h0, states)
        ctx.scale, ctx.chunk_size = scale, chunk_size
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, h0, states = ctx.saved_tensors
        B, H, T, K = q.shape
        V = v.shape[-1]
        BK, BV = _block_sizes(K, V)
        N = triton.cdiv(T, ctx.chunk_size)
        decay = _decay_kind(g)
        g_arg = g if g is not None else q
        do = do.contiguous()
        f32 = {"dtype": torch.float32}
        dstates = q.new_empty(B * H, N, K, V, **f32)
        dh0 = h0.new_empty(h0.shape, **f32) if h0 is not None else None
        chunk_bwd_dh_kernel[(triton.cdiv(V, BV), B * H)](
            q, g_arg, do, dht.contiguous() if dht is not None else q, dstates, dh0 if dh0 is not None else q,
            ctx.scale, T, K, V, BK=BK, BV=BV, CHUNK=ctx.chunk_size, DECAY=decay, FLOOR=LOG_DECAY_FLOOR,
            USE_DHT=dht is not None, USE_H0=h0 is not None, num_warps=_num_warps(BK))
        dq, dk = q.new_empty(B, H, T, K, **f32), q.new_empty(B, H, T, K, **f32)
        dv = v.new_empty(B, H, T, V, **f32)
        dg = g.new_empty(g.shape, **f32) if g is not None else None
        chunk_bwd_kernel[(N, B * H)](
            q, k, v, g_arg, do, states, dstates, dq, dk, dv, dg if dg is not None else dq, ctx.scale, T, K, V,
            BK=BK, BV=BV, CHUNK=ctx.chunk_size, DECAY=decay, FLOOR=LOG_DECAY_FLOOR, num_warps=_num_warps(BK))

        def like(grad, x):
            return None if grad is None else grad.to(x.dtype)

        return like(dq, q), like(dk, k), like(dv, v), like(dg, g), like(dh0, h0), None, None, None


def chunked_recurrence(q: Tensor, k: Tensor, v: Tensor, g: Tensor | None = None, scale: float | None = None,
                     initial_state: Tensor | None = None, output_final_state: bool = False,
                     chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """The recurrence above on q, k: (B, H, T, K), v: (B, H, T, V); g: None, (B, H, T) or (B, H, T, K)
    log-decay <= 0; initial_state: (B, H, K, V); chunk_size: a power of two >= 16.

    Returns (o: (B, H, T, V) in q's dtype, final state (B, H, K, V) in float32 or None), the same
    contract as the ``naive_recurrent_*`` ops and ``fused_recurrence`` without the delta rule.
    """
    B, H, T, K, V = check_qkv(q, k, v)
    if T < 1 or K < 1 or V < 1:
        raise ValueError(f"T, K and V must be at least 1, got T={T}, K={K}, V={V}")
    if g is not None and tuple(g.shape) not in {(B, H, T), (B, H, T, K)}:
        raise ValueError(f"g must be (B, H, T) or (B, H, T, K) = {(B, H, T, K)}, got {tuple(g.shape)}")
    if initial_state is not None:
        check_shape("initial_state", initial_state, (B, H, K, V))
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16 (tl.dot's smallest block), got {chunk_size}")
    scale = K**-0.5 if scale is None else float(scale)

    def contiguous(x):
        return None if x is None else x.contiguous()

    return ChunkRecurrence.apply(contiguous(q), contiguous(k), contiguous(v), contiguous(g),
                                 contiguous(initial_state), scale, chunk_size, output_final_state)
