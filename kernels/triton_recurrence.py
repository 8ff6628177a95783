"""One Triton recurrence for the five state updates, forward and backward, wired into autograd.

    S' = a_t * S_{t-1}                     a_t = 1, exp(g_t) per head (DECAY=1) or per key channel (DECAY=2)
    u_t = beta_t (v_t - S'^T k_t)          the delta rule (DELTA); u_t = v_t otherwise
    S_t = S' + k_t u_t^T                   o_t = scale * S_t^T q_t

linear attention is (DECAY=0, DELTA=0), simple GLA (1, 0), GLA (2, 0), the delta rule (0, 1) and the
gated delta rule (1, 1). The per-op modules (``kernels/<op>/triton.py``) fix the flags.

Every column of S evolves on its own, so the forward runs one program per (batch*head, block of
value columns) and keeps that block of S in registers while it walks the sequence. Every CHUNK
tokens it writes the entering state to ``states`` (B*H, N, K, V). The backward walks the chunks in
reverse: it reloads a chunk's entering state, recomputes the chunk's C states into a per-program
scratch buffer, then runs the exact adjoint of each token from the last to the first. Nothing is
recomputed by inversion (S_{t-1} from S_t would divide by a_t, which may be e^-40), so the backward
is as accurate as the forward for any decay. It loops over value blocks inside one program per
(batch*head) and accumulates dq, dk, dg and dbeta there, so no atomics and no host-side sums are
needed. The adjoint of one token, walking back with dS = dL/dS_t:

    dS += scale q_t do_t^T      dq_t = scale S_t do_t      du = dS^T k_t      dk_t = dS u_t
    delta rule (r_t = v_t - S'^T k_t):  dv_t = beta_t du,  dbeta_t = du . r_t,
                                        dk_t -= S' (beta_t du),  dS -= k_t (beta_t du)^T
    otherwise dv_t = du;  then dg_t = sum(dS * S') over a_t's entries and dS_{t-1} = a_t * dS.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels.runtime import use_interpreter_without_gpu
from kernels.utils import check_qkv, check_shape

use_interpreter_without_gpu()

import triton  # noqa: E402 - after choosing compiled or interpreted kernels
import triton.language as tl  # noqa: E402

CHUNK_SIZE = 16  # tokens between saved states: memory (B*H*T/C*K*V) against recompute scratch (C*K*BV)


@triton.jit
def _advance(S, p_k, p_v, p_g, p_b, m_k, m_v, DECAY: tl.constexpr, DELTA: tl.constexpr):
    """S_t from S_{t-1} and token t's k, v, g, beta at the given pointers: the forward's step, and the
    backward's recomputation of a chunk's states, from one definition."""
    k_t = tl.load(p_k, mask=m_k, other=0.0).to(tl.float32)
    v_t = tl.load(p_v, mask=m_v, other=0.0).to(tl.float32)
    if DECAY == 2:
        S = S * tl.exp(tl.load(p_g, mask=m_k, other=0.0).to(tl.float32))[:, None]
    elif DECAY == 1:
        S = S * tl.exp(tl.load(p_g).to(tl.float32))
    if DELTA:
        v_t = tl.load(p_b).to(tl.float32) * (v_t - tl.sum(S * k_t[:, None], axis=0))
    return S + k_t[:, None] * v_t[None, :]


@triton.jit
def recurrence_fwd_kernel(q, k, v, g, beta, o, h0, ht, states, scale, T, K, V,
                          BK: tl.constexpr, BV: tl.constexpr, CHUNK: tl.constexpr, DECAY: tl.constexpr,
                          DELTA: tl.constexpr, USE_H0: tl.constexpr, STORE_HT: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_kv = o_k[:, None] * V + o_v[None, :]  # this block's offsets in one (K, V) state
    # Pointers at token 0, advanced by one token per step (no index arithmetic in the loop).
    p_q, p_k = q + i_bh * T * K + o_k, k + i_bh * T * K + o_k
    p_v, p_o = v + i_bh * T * V + o_v, o + i_bh * T * V + o_v
    p_g = g + i_bh * T * K + o_k if DECAY == 2 else g + i_bh * T
    p_b = beta + i_bh * T
    S = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        S += tl.load(h0 + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    N = tl.cdiv(T, CHUNK)
    for i_n in range(0, N):
        tl.store(states + (i_bh * N + i_n) * K * V + p_kv, S, mask=m_kv)
        # The last chunk may be shorter than CHUNK.
        for _ in range(0, tl.minimum(CHUNK, T - i_n * CHUNK)):
            q_t = tl.load(p_q, mask=m_k, other=0.0).to(tl.float32)
            S = _advance(S, p_k, p_v, p_g, p_b, m_k, m_v, DECAY, DELTA)
            tl.store(p_o, (tl.sum(S * q_t[:, None], axis=0) * scale).to(p_o.dtype.element_ty), mask=m_v)
            p_q, p_k, p_v, p_o = p_q + K, p_k + K, p_v + V, p_o + V
            p_g += K if DECAY == 2 else 1
            p_b += 1
    if STORE_HT:
        tl.store(ht + i_bh * K * V + p_kv, S, mask=m_kv)


@triton.jit
def recurrence_bwd_kernel(q, k, v, g, beta, do, dht, states, scratch, dq, dk, dv, dg, dbeta, dh0, scale, T, K, V,
                          BK: tl.constexpr, BV: tl.constexpr, CHUNK: tl.constexpr, DECAY: tl.constexpr,
                          DELTA: tl.constexpr, USE_H0: tl.constexpr, USE_DHT: tl.constexpr):
    i_bh = tl.program_id(0)
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    p_scratch = scratch + i_bh * CHUNK * BK * BV + o_k[:, None] * BV + tl.arange(0, BV)[None, :]
    N = tl.cdiv(T, CHUNK)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_kv = m_k[:, None] & m_v[None, :]
        p_kv = o_k[:, None] * V + o_v[None, :]
        dS = tl.zeros([BK, BV], dtype=tl.float32)  # gradient of the loss w.r.t. S_t, walking back
        if USE_DHT:
            dS += tl.load(dht + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
        for i_r in range(0, N):
            i_n = N - 1 - i_r
            t0 = i_n * CHUNK
            n_c = tl.minimum(CHUNK, T - t0)
            # The chunk's states S_{t-1}, recomputed from the saved entering state into scratch.
            S = tl.load(states + (i_bh * N + i_n) * K * V + p_kv, mask=m_kv, other=0.0)
            p_k, p_v = k + (i_bh * T + t0) * K + o_k, v + (i_bh * T + t0) * V + o_v
            p_g = g + (i_bh * T + t0) * K + o_k if DECAY == 2 else g + i_bh * T + t0
            p_b = beta + i_bh * T + t0
            for i_c in range(0, n_c):
                tl.store(p_scratch + i_c * BK * BV, S)
                S = _advance(S, p_k, p_v, p_g, p_b, m_k, m_v, DECAY, DELTA)
                p_k, p_v = p_k + K, p_v + V
                p_g += K if DECAY == 2 else 1
                p_b += 1
            tl.debug_barrier()
            # Pointers at the chunk's last token, stepped back one token at a time.
            t = t0 + n_c - 1
            p_q, p_k, p_g = q + (i_bh * T + t) * K + o_k, k + (i_bh * T + t) * K + o_k, g + i_bh * T + t
            p_v, p_do, p_dv = v + (i_bh * T + t) * V + o_v, do + (i_bh * T + t) * V + o_v, dv + (i_bh * T + t) * V + o_v
            p_dq, p_dk, p_dg = dq + (i_bh * T + t) * K + o_k, dk + (i_bh * T + t) * K + o_k, dg + i_bh * T + t
            if DECAY == 2:
                p_g, p_dg = g + (i_bh * T + t) * K + o_k, dg + (i_bh * T + t) * K + o_k
            p_b, p_db = beta + i_bh * T + t, dbeta + i_bh * T + t
            for i_cr in range(0, n_c):
                q_t = tl.load(p_q, mask=m_k, other=0.0).to(tl.float32)
                k_t = tl.load(p_k, mask=m_k, other=0.0).to(tl.float32)
                v_t = tl.load(p_v, mask=m_v, other=0.0).to(tl.float32)
                do_t = tl.load(p_do, mask=m_v, other=0.0).to(tl.float32)
                Sp = tl.load(p_scratch + (n_c - 1 - i_cr) * BK * BV)  # S_{t-1}, then S' = a_t S_{t-1}
                if DECAY == 2:
                    a_t = tl.exp(tl.load(p_g, mask=m_k, other=0.0).to(tl.float32))[:, None]
                    Sp = Sp * a_t
                elif DECAY == 1:
                    a_t = tl.exp(tl.load(p_g).to(tl.float32))
                    Sp = Sp * a_t
                if DELTA:
                    b_t = tl.load(p_b).to(tl.float32)
                    r = v_t - tl.sum(Sp * k_t[:, None], axis=0)  # the prediction error
                    u = b_t * r
                else:
                    u = v_t
                dS += scale * q_t[:, None] * do_t[None, :]
                dq_t = scale * tl.sum((Sp + k_t[:, None] * u[None, :]) * do_t[None, :], axis=1)
                du = tl.sum(dS * k_t[:, None], axis=0)
                dk_t = tl.sum(dS * u[None, :], axis=1)
                if DELTA:
                    dr = b_t * du
                    dk_t -= tl.sum(Sp * dr[None, :], axis=1)
                    dS -= k_t[:, None] * dr[None, :]
                    tl.store(p_db, tl.load(p_db) + tl.sum(du * r, axis=0))
                    du = dr
                tl.store(p_dv, du, mask=m_v)
                # dS is now the gradient w.r.t. S' = a_t S_{t-1}; d g_t = sum(dS' * S') over a_t's entries.
                # Gradients that sum over value blocks are accumulated by this program alone.
                if DECAY == 2:
                    tl.store(p_dg, tl.load(p_dg, mask=m_k, other=0.0) + tl.sum(dS * Sp, axis=1), mask=m_k)
                    dS = dS * a_t
                elif DECAY == 1:
                    tl.store(p_dg, tl.load(p_dg) + tl.sum(tl.sum(dS * Sp, axis=1), axis=0))
                    dS = dS * a_t
                tl.store(p_dq, tl.load(p_dq, mask=m_k, other=0.0) + dq_t, mask=m_k)
                tl.store(p_dk, tl.load(p_dk, mask=m_k, other=0.0) + dk_t, mask=m_k)
                p_q, p_k, p_dq, p_dk = p_q - K, p_k - K, p_dq - K, p_dk - K
                p_v, p_do, p_dv = p_v - V, p_do - V, p_dv - V
                p_g -= K if DECAY == 2 else 1
                p_dg -= K if DECAY == 2 else 1
                p_b, p_db = p_b - 1, p_db - 1
            tl.debug_barrier()
        if USE_H0:
            tl.store(dh0 + i_bh * K * V + p_kv, dS, mask=m_kv)


def _block_sizes(K: int, V: int) -> tuple[int, int]:
    """The whole key dimension in one block; value columns in blocks of up to 32 on a GPU (register
    pressure) and 64 under the interpreter (fewer programs to walk in Python)."""
    BK = triton.next_power_of_2(K)
    BV = min(triton.next_power_of_2(V), 32 if torch.cuda.is_available() else 64)
    return BK, BV


def _decay_kind(g: Tensor | None) -> int:
    return 0 if g is None else 1 if g.dim() == 3 else 2


class FusedRecurrence(torch.autograd.Function):
    """Autograd for ``fused_recurrence``; inputs are contiguous, g/beta/h0 may be None."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, h0, scale, chunk_size, output_final_state):
        B, H, T, K = q.shape
        V = v.shape[-1]
        BK, BV = _block_sizes(K, V)
        N = triton.cdiv(T, chunk_size)
        o = torch.empty_like(v, dtype=q.dtype)
        ht = q.new_empty(B, H, K, V, dtype=torch.float32) if output_final_state else None
        states = q.new_empty(B * H, N, K, V, dtype=torch.float32)
        recurrence_fwd_kernel[(triton.cdiv(V, BV), B * H)](
            q, k, v, g if g is not None else q, beta if beta is not None else q, o,
            h0 if h0 is not None else q, ht if ht is not None else q, states, scale, T, K, V,
            BK=BK, BV=BV, CHUNK=chunk_size, DECAY=_decay_kind(g), DELTA=beta is not None,
            USE_H0=h0 is not None, STORE_HT=output_final_state)
        ctx.save_for_backward(q, k, v, g, beta, h0, states)
        ctx.scale, ctx.chunk_size = scale, chunk_size
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, beta, h0, states = ctx.saved_tensors
        B, H, T, K = q.shape
        V = v.shape[-1]
        BK, BV = _block_sizes(K, V)
        f32 = {"dtype": torch.float32}
        dq, dk = q.new_zeros(B, H, T, K, **f32), q.new_zeros(B, H, T, K, **f32)
        dv = v.new_empty(B, H, T, V, **f32)
        dg = g.new_zeros(g.shape, **f32) if g is not None else None
        dbeta = beta.new_zeros(beta.shape, **f32) if beta is not None else None
        dh0 = h0.new_empty(h0.shape, **f32) if h0 is not None else None
        scratch = q.new_empty(B * H, ctx.chunk_size, BK, BV, **f32)
        recurrence_bwd_kernel[(B * H,)](
            q, k, v, g if g is not None else q, beta if beta is not None else q, do.contiguous(),
            dht.contiguous() if dht is not None else q, states, scratch, dq, dk, dv,
            dg if dg is not None else dq, dbeta if dbeta is not None else dq, dh0 if dh0 is not None else dq,
            ctx.scale, T, K, V, BK=BK, BV=BV, CHUNK=ctx.chunk_size, DECAY=_decay_kind(g),
            DELTA=beta is not None, USE_H0=h0 is not None, USE_DHT=dht is not None)

        def like(grad, x):
            return None if grad is None else grad.to(x.dtype)

        return (like(dq, q), like(dk, k), like(dv, v), like(dg, g), like(dbeta, beta), like(dh0, h0),
                None, None, None)


def fused_recurrence(q: Tensor, k: Tensor, v: Tensor, g: Tensor | None = None, beta: Tensor | None = None,
                     scale: float | None = None, initial_state: Tensor | None = None,
                     output_final_state: bool = False,
                     chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """The recurrence above on q, k: (B, H, T, K), v: (B, H, T, V); g: None, (B, H, T) or (B, H, T, K)
    log-decay <= 0; beta: None (no delta rule) or (B, H, T); initial_state: (B, H, K, V).

    Returns (o: (B, H, T, V) in q's dtype, final state (B, H, K, V) in float32 or None), the same
    contract as the ``naive_recurrent_*`` ops.
    """
    B, H, T, K, V = check_qkv(q, k, v)
    if g is not None and tuple(g.shape) not in {(B, H, T), (B, H, T, K)}:
        raise ValueError(f"g must be (B, H, T) or (B, H, T, K) = {(B, H, T, K)}, got {tuple(g.shape)}")
    if beta is not None:
        check_shape("beta", beta, (B, H, T))
    if initial_state is not None:
        check_shape("initial_state", initial_state, (B, H, K, V))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    scale = K**-0.5 if scale is None else float(scale)

    def contiguous(x):
        return None if x is None else x.contiguous()

    return FusedRecurrence.apply(contiguous(q), contiguous(k), contiguous(v), contiguous(g), contiguous(beta),
                                 contiguous(initial_state), scale, chunk_size, output_final_state)
