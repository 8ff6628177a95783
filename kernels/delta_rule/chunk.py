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
    # Row and column scalings (scale, beta, decays) are applied to the C x C matrices, which are
    # smaller than the C x K / C x V ones at the chunk sizes used.
    if g is None:
        L = ((kc @ kt) * betac.unsqueeze(-1)).tril(-1)  # (B, H, N, C, C)
        Aqk = (qc @ kt).tril() * scale
        Tinv = invert_unit_lower(L) * betac.unsqueeze(-2)  # T diag(beta)
        w = Tinv @ kc  # (B, H, N, C, K): how the pseudo-values depend on the entering state
        q_from_start, k_to_end, chunk_decay = qc * scale, kt, None
    else:
        b = chunk_log_decay(g.to(dtype), C)  # (B, H, N, C)
        decay = pairwise_decay(b)  # (B, H, N, C, C)
        L = ((kc @ kt) * (decay * betac.unsqueeze(-1))).tril(-1)
        Aqk = (qc @ kt) * (decay * scale)
        Tinv = invert_unit_lower(L) * betac.unsqueeze(-2)
        from_start = b.exp()
        w = (Tinv * from_start.unsqueeze(-2)) @ kc
        q_from_start = qc * (scale * from_start).unsqueeze(-1)
        k_to_end = (kc * (b[..., -1:] - b).exp().unsqueeze(-1)).transpose(-1, -2)
        chunk_decay = b[..., -1, None, None].exp().flatten(0, 1).unbind(1)  # N x (B * H, 1, 1)
    u = Tinv @ vc  # (B, H, N, C, V): the pseudo-values from the chunk's own tokens
    S = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype).flatten(0, 1)  # (B * H, K, V)
    outputs = []
    # (B * H, ...) views per chunk, so each step is a plain fused bmm
    per_chunk = [x.flatten(0, 1).unbind(1) for x in (q_from_start, Aqk, w, u, k_to_end)]
    for n, (q_n, A_n, w_n, u_n, k_n) in enumerate(zip(*per_chunk)):
        new_v = torch.baddbmm(u_n, w_n, S, alpha=-1)  # (B * H, C, V)
        outputs.append(torch.baddbmm(torch.bmm(A_n, new_v), q_n, S))
        S = torch.baddbmm(S if chunk_decay is None else chunk_decay[n] * S, k_n, new_v)
    S = S.view(B, H, K, V)
    o = torch.stack(outputs, dim=1).view(B, H, -1, C, V)  # (B, H, N, C, V)
    return from_chunks(o, T).to(q.dtype), S if output_final_state else None
