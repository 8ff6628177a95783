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
    if q.is_cuda:  # on a GPU, the chunked Triton kernels (kernels/<op>/triton.py)
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
    qk, kk = qc @ kt, kc @ kt  # (B, H, N, C, C)
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
        chunk_decay = b[..., -1].exp().flatten(0, 1)  # (B * H, N)
    Tinv = invert_unit_lower(L) * betac.unsqueeze(-2)  # T diag(beta)
    # w: how the pseudo-values depend on the entering state; u: the pseudo-values from the chunk's own tokens
    w, u = Tinv @ k_in, Tinv @ vc  # (B, H, N, C, K), (B, H, N, C, V)
    S0 = initial_state_or_zeros(initial_state, B, H, K, V, q, dtype).flatten(0, 1)  # (B * H, K, V)

    def per_head(x: Tensor) -> Tensor:
        return x.flatten(0, 1)

    new_v, states, S = delta_chunk_scan(per_head(w), per_head(u), per_head(k_to_end), chunk_decay, S0)
    # Everything but the state recursion is batched over all chunks at once.
    o = (per_head(q_from_start) @ states + per_head(Aqk) @ new_v).view(B, H, -1, C, V)  # (B, H, N, C, V)
    S = S.view(B, H, K, V)
    return from_chunks(o, T).to(q.dtype), S if output_final_state else None


def delta_chunk_scan(w: Tensor, u: Tensor, k_to_end: Tensor, decay: Tensor | None,
                     initial: Tensor, extra: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The only sequential part of the chunked delta rules, chunk by chunk (batched over B * H):

        new_v_n = u_n - w_n S_n          S_{n+1} = decay_n S_n + k_to_end_n new_v_n [+ extra_n]

    w: (BH, N, C, K), u: (BH, N, C, V), k_to_end: (BH, N, K, C), initial: (BH, K, V); decay: None,
    (BH, N) a scalar per head or (BH, N, K) one per key channel (multiplying the rows of S);
    extra: None or (BH, N, K, V), a state update that does not depend on S (RWKV-7's k v^T part).
    Returns new_v (BH, N, C, V), the states entering each chunk (BH, N, K, V) and the final state.
    """
    return _DeltaChunkScan.apply(w, u, k_to_end, decay, initial, extra)


def _decayed(decay: Tensor | None, n: int, S: Tensor, plus: Tensor | None = None) -> Tensor:
    """decay_n S [+ plus], in one op: decay a scalar per head (BH, N) or a per-row (key channel) factor
    (BH, N, K)."""
    if decay is None:
        return S if plus is None else S + plus
    factor = decay[:, n, None, None] if decay.dim() == 2 else decay[:, n, :, None]
    return factor * S if plus is None else torch.addcmul(plus, factor, S)


class _DeltaChunkScan(torch.autograd.Function):
    """The recursion above with its adjoint written out: autograd through the loop recorded a node per
    chunk and op, and stacked or concatenated every per-chunk gradient (~40 % of the delta rule's
    time at the tiers' shapes). Walking back with G = dL/dS_{n+1}:

        dnew_v_n = dL/dnew_v_n + k_to_end_n^T G        dS_n = decay_n G - w_n^T dnew_v_n + dL/dS_n

    and the per-chunk gradients of w, k_to_end, decay and extra (= G) are then one batched product each.
    """

    @staticmethod
    def forward(ctx, w, u, k_to_end, decay, initial, extra):
        BH, N, C, V = u.shape
        new_v = u.new_empty(BH, N, C, V)
        states = u.new_empty(BH, N, *initial.shape[1:])
        S = initial
        for n in range(N):
            states[:, n] = S
            new_v[:, n] = new_v_n = torch.baddbmm(u[:, n], w[:, n], S, alpha=-1)
            S = torch.baddbmm(_decayed(decay, n, S, None if extra is None else extra[:, n]), k_to_end[:, n], new_v_n)
        ctx.save_for_backward(w, k_to_end, decay, new_v, states)
        ctx.has_extra = extra is not None
        return new_v, states, S

    @staticmethod
    def backward(ctx, d_new_v, d_states, d_final):
        # autograd materializes the gradients of unused outputs as zeros, so none of the three is None
        w, k_to_end, decay, new_v, states = ctx.saved_tensors
        G = d_final
        grad_after = states.new_empty(states.shape)  # dL/dS_{n+1} for each chunk n
        dnv = new_v.new_empty(new_v.shape)
        for n in reversed(range(new_v.shape[1])):
            grad_after[:, n] = G
            dnv[:, n] = dnv_n = torch.baddbmm(d_new_v[:, n], k_to_end[:, n].transpose(-1, -2), G)
            G = torch.baddbmm(_decayed(decay, n, G, d_states[:, n]), w[:, n].transpose(-1, -2), dnv_n, alpha=-1)
        dw = torch.matmul(dnv, states.transpose(-1, -2)).neg_()
        dk_to_end = grad_after @ new_v.transpose(-1, -2)
        if decay is None:
            ddecay = None
        else:
            ddecay = (grad_after * states).sum((-1, -2) if decay.dim() == 2 else -1)
        return dw, dnv, dk_to_end, ddecay, G, grad_after if ctx.has_extra else None
