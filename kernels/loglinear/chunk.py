"""Chunked log-linear attention with a scalar decay per head: exact, O(T log T), pure PyTorch.

Inside a chunk of C = 2^c tokens the masked quadratic form; between chunks one level at a time: at
level c + j the buckets are whole runs of 2^(j-1) chunks, so every token of an odd run reads the
state of the even run before it, and the runs' states come from a pairwise tree over the chunks'
states. README.md has the derivation.
"""

import torch
from torch import Tensor

from ..utils import (
    check_qkv,
    chunk_log_decay,
    compute_dtype,
    fit_chunk_size,
    from_chunks,
    pairwise_decay,
    resolve_scale,
    to_chunks,
)
from .naive import _check_gates, level_matrix, level_weights

# A power of two (the chunks must be Fenwick buckets); 32 as for chunk_simple_gla.
CHUNK_SIZE = 32


def chunk_loglinear_attn(q: Tensor, k: Tensor, v: Tensor, g: Tensor, lam: Tensor, scale: float | None = None,
                         chunk_size: int = CHUNK_SIZE) -> Tensor:
    """Same contract as `naive_loglinear_attn`: q, k (B, H, T, K), v (B, H, T, V), g (B, H, T) log-decay
    <= 0, lam (B, H, T, L) level weights (levels >= L use lam[..., L - 1]) -> o (B, H, T, V).

    Starts from an empty state (no initial_state: a sequence begins at position 0, where the Fenwick
    buckets are aligned). Per-step log-decays are floored at LOG_DECAY_FLOOR as in the other chunked
    forms; every exponent taken is <= 0. Row t involves tokens <= t only (bit-exactly causal).
    """
    B, H, T, K, V = check_qkv(q, k, v)
    _check_gates(g, lam, B, H, T)
    if chunk_size < 1 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two, got {chunk_size}")
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    c = C.bit_length() - 1
    N = -(-T // C)
    n_pad = 1 << max(N - 1, 0).bit_length()  # chunks, padded to a power of two for the pairwise tree
    levels = c + n_pad.bit_length()  # 0 .. c inside a chunk, c + 1 .. c + log2(n_pad) between chunks
    L = lam.shape[-1]
    lam = lam.to(dtype)[..., [min(level, L - 1) for level in range(levels)]]  # (B, H, T, levels)

    def chunks(x: Tensor) -> Tensor:  # (B, H, T, ...) -> (B, H, n_pad, C, ...), zero-padded
        x = to_chunks(x, C)
        pad = n_pad - x.shape[2]
        return torch.cat([x, x.new_zeros(B, H, pad, *x.shape[3:])], dim=2) if pad else x

    qc = chunks(q.to(dtype) * resolve_scale(scale, K))  # (B, H, n, C, K)
    kc = chunks(k.to(dtype))
    vc = chunks(v.to(dtype))  # (B, H, n, C, V)
    lc = chunks(lam)  # (B, H, n, C, levels)
    b = chunks(chunk_log_decay(g.to(dtype), C).flatten(2, 3))  # (B, H, n, C) log-decay since the chunk start
    b_last = b[..., -1]  # (B, H, n) each chunk's whole log-decay

    # Levels 0 .. c: inside each chunk, the masked quadratic form.
    M_H = level_weights(lc[..., : c + 1], level_matrix(C, q.device))  # (B, H, n, C, C)
    o = ((qc @ kc.transpose(-1, -2)) * pairwise_decay(b) * M_H) @ vc

    # Levels c + j, j >= 1: runs of r = 2^(j-1) chunks; odd runs read the even run before them.
    states = (kc * (b_last.unsqueeze(-1) - b).exp().unsqueeze(-1)).transpose(-1, -2) @ vc  # (B, H, n, K, V)
    run_decay = b_last  # (B, H, n / r) each run's whole log-decay
    r = 1
    while r < n_pad:
        pairs = n_pad // (2 * r)
        # log-decay from the start of the token's run to the token: earlier chunks of the run, then b.
        # An exclusive sum of the earlier chunks only: cumsum(x) - x would round with the chunk's own
        # total, which holds its later tokens, and break causality bit-exactly.
        totals = b_last.unflatten(2, (n_pad // r, r))  # (B, H, runs, r)
        before = torch.cat([torch.zeros_like(totals[..., :1]), totals[..., :-1].cumsum(-1)], -1).flatten(2, 3)
        weight = (b + before.unsqueeze(-1)).exp() * lc[..., c + r.bit_length()]  # (B, H, n, C)
        q_odd = qc.unflatten(2, (pairs, 2, r))[:, :, :, 1].flatten(3, 4)  # (B, H, pairs, r C, K)
        S_pairs = states.unflatten(2, (pairs, 2))
        read = (q_odd @ S_pairs[:, :, :, 0]) * weight.unflatten(2, (pairs, 2, r))[:, :, :, 1].flatten(3, 4)[..., None]
        o = o + torch.stack([torch.zeros_like(read), read], dim=3).reshape(o.shape)
        # the next level's runs: the even run decayed across the odd one, plus the odd one
        d_pairs = run_decay.unflatten(2, (pairs, 2))
        states = d_pairs[..., 1, None, None].exp() * S_pairs[:, :, :, 0] + S_pairs[:, :, :, 1]
        run_decay = d_pairs.sum(-1)
        r *= 2
    return from_chunks(o, T).to(q.dtype)
