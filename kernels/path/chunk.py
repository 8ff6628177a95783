"""Blockwise PaTH attention: the Householder products of each chunk in the compact UT form, queries
carried back one chunk at a time, and a softmax accumulated over key chunks; exact, O(T^2 K), pure
PyTorch. README.md has the derivation.
"""

import torch
from torch import Tensor

from ..utils import compute_dtype, fit_chunk_size, from_chunks, invert_unit_lower, resolve_scale, to_chunks
from .naive import PathState, check_path_inputs, empty_path_state

# Fastest forward + backward on one CPU thread at B = 32, H = 2, T = 128 and 256, K = V = 32 (README.md).
CHUNK_SIZE = 32


def chunk_path_attn(q: Tensor, k: Tensor, v: Tensor, w: Tensor, beta: Tensor, scale: float | None = None,
                    output_final_state: bool = False,
                    chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, PathState | None]:
    """The inputs and output of `naive_path_attn`: q, k, w (B, H, T, K), v (B, H, T, V), beta (B, H, T).

    Returns (o (B, H, T, V), the key-value cache after the last token or None): the cache is what
    `naive_recurrent_path_attn` returns, so `path_step` can continue from it. It starts from an empty
    cache. Row i involves tokens <= i only, bit-exactly for unit w and beta in [0, 2] (README.md).
    """
    B, H, T, K, V = check_path_inputs(q, k, v, w, beta)
    dtype = compute_dtype(q)
    if T == 0:
        return q.new_zeros(B, H, 0, V), empty_path_state(B, H, K, V, q) if output_final_state else None
    C = fit_chunk_size(T, chunk_size)
    qc = to_chunks(q.to(dtype) * resolve_scale(scale, K), C)  # (B, H, N, C, K); the scale rides on q
    kc, wc = to_chunks(k.to(dtype), C), to_chunks(w.to(dtype), C)
    vc = to_chunks(v.to(dtype), C)  # (B, H, N, C, V)
    bc = to_chunks(beta.to(dtype), C)  # (B, H, N, C); padding has beta = 0, w = 0: H_s = I
    N = qc.shape[2]
    wt = wc.transpose(-1, -2)  # (B, H, N, K, C)

    # UT form, per chunk with tokens 1..C: H_s ... H_{r0} = I - sum_{r0 <= r <= s' <= s} w_s' A[s', r] b_r w_r^T,
    # A = (I + tril(diag(b) W W^T, -1))^-1 (the inverse of a lower-triangular matrix restricted to a
    # trailing block is that block's inverse, so one A serves every starting token r0).
    A_b = invert_unit_lower((wc @ wt * bc.unsqueeze(-1)).tril(-1)) * bc.unsqueeze(-2)  # A diag(b): (.., C, C)
    U = A_b @ wc  # (B, H, N, C, K): the chunk's whole product H_C ... H_1 is I - W^T U
    qw = (qc @ wt).tril()  # [i, s] = q_i . w_s for s <= i
    awk = A_b @ (wc @ kc.transpose(-1, -2)).tril(-1)  # [s, j] = sum_{j < r <= s} A[s, r] b_r (w_r . k_j)
    # q_i^T H_i ... H_{j+1} k_j for j <= i; the entries above the diagonal are masked before the softmax
    intra = qc @ kc.transpose(-1, -2) - qw @ awk
    q_start = qc - qw @ U  # rows q_i^T H_i ... H_1: each query carried back to its chunk's start
    k_end = kc - awk.transpose(-1, -2) @ wc  # H_C ... H_{j+1} k_j: each key carried to its chunk's end
    eye = torch.eye(K, dtype=dtype, device=q.device)
    P = eye - wt @ U  # (B, H, N, K, K) the chunk's product; a row q^T P carries a query back across it

    # The softmax over key chunks n, n-1, ..., 0 of each query chunk n, accumulated as in flash
    # attention: a running max (a constant for autograd: it cancels), sum and weighted values. The
    # diagonal block first, then key chunk n - d for every query chunk n >= d at once.
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    scores = intra.masked_fill(~causal, float("-inf"))
    run_max = scores.amax(-1, keepdim=True).detach()  # (B, H, N, C, 1); the diagonal is always there
    p = (scores - run_max).exp()
    run_sum, acc = p.sum(-1, keepdim=True), p @ vc
    queries = q_start[:, :, 1:]  # query chunks d..N-1, carried back to the end of key chunk n - d
    for d in range(1, N):
        scores = queries @ k_end[:, :, : N - d].transpose(-1, -2)  # (B, H, N - d, C, C)
        new_max = torch.maximum(run_max[:, :, d:], scores.amax(-1, keepdim=True).detach())
        rescale = (run_max[:, :, d:] - new_max).exp()
        p = (scores - new_max).exp()
        run_sum = torch.cat([run_sum[:, :, :d], run_sum[:, :, d:] * rescale + p.sum(-1, keepdim=True)], dim=2)
        acc = torch.cat([acc[:, :, :d], acc[:, :, d:] * rescale + p @ vc[:, :, : N - d]], dim=2)
        run_max = torch.cat([run_max[:, :, :d], new_max], dim=2)
        if d < N - 1:  # across key chunk n - d, ready for chunk n - d - 1
            queries = queries[:, :, 1:] @ P[:, :, 1 : N - d]
    o = from_chunks(acc / run_sum, T).to(q.dtype)
    if not output_final_state:
        return o, None
    # The cache after the last token: key j carried from its chunk's end across every later chunk,
    # k_end^T P_{m+1}^T ... P_{N-1}^T as rows, from a product built from the last chunk backwards.
    later = eye.expand(B, H, K, K)
    keys = [k_end[:, :, N - 1]]
    for m in range(N - 2, -1, -1):
        later = P[:, :, m + 1].transpose(-1, -2) @ later
        keys.append(k_end[:, :, m] @ later)
    keys = from_chunks(torch.stack(keys[::-1], dim=2), T)
    return o, (keys, v.to(dtype))
