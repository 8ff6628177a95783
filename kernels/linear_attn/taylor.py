"""Chunked linear attention with BASED's second-order Taylor feature map, without expanding it in a chunk.

With phi = ``feature_map("taylor2")`` on K-dim queries and keys, phi(q) . phi(k) = 1 + s + s^2 / 2
for s = q . k / sqrt(K). Inside a chunk that kernel is computed from the K-dim scores directly;
only the state carried between chunks needs the 1 + K + K^2-dim features. At K = 16 the features
are 273 wide, so for sequences of one chunk (the smoke tier's) this skips them altogether: the
same outputs as ``chunk_linear_attn(phi(q), phi(k), v, scale=1)`` at a fraction of the work.
"""

import math

from torch import Tensor

from ..feature_maps import feature_map
from ..utils import check_qkv, chunk_state_scan, compute_dtype, fit_chunk_size, from_chunks, to_chunks

CHUNK_SIZE = 64


def chunk_taylor_linear_attn(q: Tensor, k: Tensor, v: Tensor, chunk_size: int = CHUNK_SIZE) -> Tensor:
    """o_t = sum_{s <= t} (1 + q_t . k_s / sqrt(K) + (q_t . k_s)^2 / (2 K)) v_s; q, k: (B, H, T, K), v: (B, H, T, V)."""
    B, H, T, K, V = check_qkv(q, k, v)
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    qc, kc, vc = (to_chunks(x.to(dtype), C) for x in (q, k, v))  # (B, H, N, C, K or V)
    s = (qc @ kc.transpose(-1, -2)) / math.sqrt(K)  # (B, H, N, C, C)
    o = (1 + s + 0.5 * s * s).tril() @ vc  # padded keys sit after every real query: tril drops them
    if qc.shape[2] > 1:  # the state entering each chunk, in feature space
        phi = feature_map("taylor2")
        phi_k = phi(kc)
        states, _ = chunk_state_scan(None, phi_k.transpose(-1, -2) @ vc, vc.new_zeros(B, H, phi_k.shape[-1], V))
        o = o + phi(qc) @ states
    return from_chunks(o, T).to(q.dtype)
