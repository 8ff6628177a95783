"""Chunked delta rule in the WY/UT form: exact, linear in T, pure PyTorch."""

import torch
from torch import Tensor

from ..utils import (
    check_qkv,
    check_shape,
    chunk_log_decay,
    compute_dtype,
    fit_chunk_size,
    from_chunks,
    initial_state_or_zeros,
    invert_unit_lower,
    pairwise_decay,
    resolve_scale,
    to_chunks,
)

# Fastest fwd+bwd on one CPU thread at B=64, T=128 and B=32, T=256 (H=2, K=V=32); see README.md.
CHUNK_SIZE = 16


def chunk_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None = None,
                     initial_state: Tensor | None = None, output_final_state: bool = False,
                     chunk_size: int = CHUNK_SIZE) -> tuple[Tensor, Tensor | None]:
    """Same contract as `naive_recurrent_delta_rule`; beta: (B, H, T)."""
    if q.is_cuda:  # on a GPU, the fused Triton kernel (kernels/triton_recurrence.py)
        from .triton import triton_delta_rule

        return triton_delta_rule(q, k, v, beta, scale=scale, initial_state=initial_state,
                                 output_final_state=output_final_state)
    return delta_rule_chunked(q, k, v, None, beta, scale, initial_state, output_final_state, chunk_size)


def delta_rule_chunked(q: Tensor, k: Tensor, v: Tensor, g: Tensor | None, beta: Tensor, scale: float | None,
                       initial_state: Tensor | None, output_final_state: bool,
                       chunk_size: int) -> tuple[Tensor, Tensor | None]:
    """The delta rule, gated when g (B, H, T) log-decay is given; README.md has the derivation."""
    B, H, T, K, V = check_qkv(q, k, v)
    check_shape("beta", beta, (B, H, T))
    if g is not None:
        check_shape("g", g, (B, H, T))
    dtype = compute_dtype(q)
    C = fit_chunk_size(T, chunk_size)
    scale = resolve_scale(scale, K)
    qc = to_chunks(q.to(dtype), C)  # (B, H, N, C, K)
    kc = to_chunks(k.to(dtype), C)
    vc = to_chunks(v.to(dtype), C)  # (B, H, N, C, V)
    betac = to_chunks(beta.to(dtype), C)  # (B, H, N, C)
    kt = kc.transpose(-1, -2)  # (B, H, N, K, C)
    # Small batched matmuls cost mostly per-matrix overhead on a CPU, so products that share an
    # operand are done as one: [q; k] k^T, T [k; v] and, per chunk, [w; q] S.
    qk_kk = torch.cat([qc, kc], dim=-2) @ kt  # (B, H, N, 2C, C)
    qk, kk = qk_kk[..., :C, :], qk_kk[..., C:, :]
    # Row and column scalings (scale, beta, decays) are applied to the C x C matrices, which are
    # smaller than the C x K / C x V ones at the chunk sizes used.
    if g is None:
        L = (kk * betac.unsqueeze(-1)).tril(-1)  # (B, H, N, C, C)
        Aqk = qk.tril() * scale
        k_in, q_from_start, k_to_end, chunk_decay = kc, qc * scale, kt, None
    else:
        b = chunk_log_decay(g.to(dtype), C)  # (B, H, N, C)
        decay = pairwise_decay(b)  # (B, H, N, C, C)
        L = (kk * (decay * betac.unsqueeze(-1))).tril(-1)
        Aqk = qk * (decay * scale)
        from_start = b.exp().unsqueeze(-1)
        k_in = kc * from_start
        q_from_start = qc * (scale * from_start)
        k_to_end = (kc * (b[..., -1:] - b).exp().unsqueeze(-1)).transpose(-1, -2)
        chunk_decay = b[..., -1, None, None].exp().flatten(0, 1).unbind(1)  # N x (B * H, 1, 1)
    Tinv = invert_unit_lower(L) * betac.unsqueeze(-2)  # T diag(beta)
    # w: how the pseudo-values depend on the entering state; u: the pseudo-values from the chunk's own tokens
    w, u = (Tinv @ torch.cat([k_in, vc], dim=-1)).split([K, V], dim=-1)  # (B, H, N, C, K), (B, H, N, C, V)
    S = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype).flatten(0, 1)  # (B * H, K, V)
    outputs = []
    # (B * H, ...) views per chunk, so each step is a plain fused bmm
    per_chunk = [x.flatten(0, 1).unbind(1) for x in (torch.cat([w, q_from_start], dim=-2), Aqk, u, k_to_end)]
    for n, (wq_n, A_n, u_n, k_n) in enumerate(zip(*per_chunk)):
        wS, qS = (wq_n @ S).split(C, dim=1)  # (B * H, C, V) each
        new_v = u_n - wS
        outputs.append(torch.baddbmm(qS, A_n, new_v))
        S = torch.baddbmm(S if chunk_decay is None else chunk_decay[n] * S, k_n, new_v)
    S = S.view(B, H, K, V)
    o = torch.stack(outputs, dim=1).view(B, H, -1, C, V)  # (B, H, N, C, V)
    return from_chunks(o, T).to(q.dtype), S if output_final_state else None
