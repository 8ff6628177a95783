"""Log-linear attention with a scalar decay per head (log-linear Mamba-2): the Fenwick level function,
the quadratic masked form (the ground truth), and the recurrent form over O(log T) Fenwick states.

Layout as in the other recurrences: q, k (B, H, T, K), v (B, H, T, V), log-decays g (B, H, T) <= 0, and
per-level weights lam (B, H, T, L) >= 0. Token t reads the bucket of level l with weight lam[..., t, l];
levels at or past L share the last weight lam[..., t, L - 1]. README.md has the definitions.
"""

import torch
from torch import Tensor

from ..utils import check_qkv, check_shape, compute_dtype, resolve_scale, step_loop


def fenwick_level(t: int, s: int) -> int:
    """The level of the bucket that holds token s as seen from token t >= s (0-indexed positions).

    0 for s = t (the token itself); else l >= 1 when t and s first differ in bit l - 1, i.e. the bit
    length of t XOR s: the bucket is the 2^(l-1) tokens that share t's bits above l - 1 and have bit
    l - 1 clear, where t has it set.
    """
    if not 0 <= s <= t:
        raise ValueError(f"fenwick_level needs 0 <= s <= t, got t={t}, s={s}")
    return (t ^ s).bit_length()


def num_levels(T: int) -> int:
    """Levels that T tokens use: level 0 and one per bit of T - 1 (ceil(log2 T) + 1 for T >= 2)."""
    return max(T - 1, 0).bit_length() + 1


def level_matrix(T: int, device: torch.device | str | None = None) -> Tensor:
    """(T, T) int64: fenwick_level(t, s) for s <= t, and 0 above the diagonal (masked anyway)."""
    pos = torch.arange(T, device=device)
    x = (pos[:, None] ^ pos[None, :]).tril()
    level = torch.zeros_like(x)
    for bit in range(max(T - 1, 0).bit_length()):  # bit length = the number of powers of two <= x
        level += (x >= (1 << bit)).long()
    return level


def level_weights(lam: Tensor, levels: Tensor) -> Tensor:
    """lam (..., T, L) read at integer ``levels`` (T, S) row by row, levels >= L clamped to L - 1:
    (..., T, S) with out[..., t, s] = lam[..., t, min(levels[t, s], L - 1)]."""
    index = levels.clamp_max(lam.shape[-1] - 1).to(lam.device)
    return torch.gather(lam, -1, index.expand(*lam.shape[:-1], index.shape[-1]))


def _check_gates(g: Tensor, lam: Tensor, B: int, H: int, T: int) -> None:
    check_shape("g", g, (B, H, T))
    if lam.dim() != 4 or tuple(lam.shape[:3]) != (B, H, T) or lam.shape[3] < 1:
        raise ValueError(f"lam must be (B, H, T, L) = ({B}, {H}, {T}, L >= 1), got {tuple(lam.shape)}")


def naive_loglinear_attn(q: Tensor, k: Tensor, v: Tensor, g: Tensor, lam: Tensor,
                         scale: float | None = None) -> Tensor:
    """O = (scale Q K^T * M_decay * M_H) V, straight from the masked matrix form; O(T^2) time and memory.

    M_decay[t, s] = exp(g_{s+1} + ... + g_t) for s <= t (else 0); M_H[t, s] = lam[t, level(t, s)].
    The decay exponents are segment sums taken as cumulative sums of the masked g (no difference of
    two long prefix sums), so they are exact to the dtype's rounding. Returns (B, H, T, V).
    """
    B, H, T, K, V = check_qkv(q, k, v)
    _check_gates(g, lam, B, H, T)
    dtype = compute_dtype(q)
    q, k, v, g, lam = q.to(dtype), k.to(dtype), v.to(dtype), g.to(dtype), lam.to(dtype)
    strictly_below = torch.ones(T, T, dtype=torch.bool, device=q.device).tril(-1)  # [k, s]: s < k
    # segsum[t, s] = sum_{s < k <= t} g_k: a cumulative sum over k of g_k masked to k > s
    terms = g.unsqueeze(-1).expand(B, H, T, T).masked_fill(~strictly_below, 0.0)  # [.., k, s]
    segsum = terms.cumsum(-2)  # [.., t, s] = sum_{k <= t, k > s} g_k
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    decay = segsum.masked_fill(~causal, float("-inf")).exp()
    mask = decay * level_weights(lam, level_matrix(T, q.device))
    scores = resolve_scale(scale, K) * (q @ k.transpose(-1, -2))
    return (scores * mask) @ v


# ---------------------------------------------------------------------------------------------------
# Recurrent form. The state after n tokens is (S, n): S (B, H, J, K, V) with J = bit_length(n) slots,
# slot j holding the bucket of the 2^j tokens that bit j of n stands for (zeros where that bit is clear),
# each decayed to the present; n (B,) int64, the tokens consumed (the same in every row).


def empty_fenwick_state(B: int, H: int, K: int, V: int, like: Tensor,
                        dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """The state before the first token: no slots, no tokens."""
    return (like.new_zeros(B, H, 0, K, V, dtype=dtype or compute_dtype(like)),
            torch.zeros(B, dtype=torch.long, device=like.device))


def trailing_ones(n: int) -> int:
    """The number of low bits of n that are set: the slots a carry merges when token n arrives."""
    return (n ^ (n + 1)).bit_length() - 1


def loglinear_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, g_t: Tensor, lam_t: Tensor,
                   state: tuple[Tensor, Tensor], scale: float | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One token: decay every bucket by exp(g_t), read level 0 (the token itself) and the buckets,
    then add the token with a binary carry.

    q_t, k_t: (B, H, K); v_t: (B, H, V); g_t: (B, H); lam_t: (B, H, L); state (S, n) as above.
    o_t = scale * (lam_t[0] (q_t . k_t) v_t + sum_j lam_t[j + 1] S_j^T q_t). The new token, with the
    m slots below the lowest clear bit of n (its trailing ones), merges into slot m (one bucket of 2^m
    tokens); those m slots are emptied and slot m is appended when n = 2^J - 1. So S grows by one slot
    each time n reaches a power of two: bit_length(n) slots after n tokens.
    """
    dtype = compute_dtype(q_t)
    S, count = state
    n = int(count[0]) if count.numel() else 0
    q, k, v, g, lam = (x.to(dtype) for x in (q_t, k_t, v_t, g_t, lam_t))
    S = S.to(dtype) * g.exp()[..., None, None, None]
    J, L = S.shape[2], lam.shape[-1]
    kv = k.unsqueeze(-1) * v.unsqueeze(-2)  # (B, H, K, V)
    slot_weights = lam[..., [min(j + 1, L - 1) for j in range(J)]]  # (B, H, J)
    read = (slot_weights[..., None, None] * S).sum(2) + lam[..., :1, None] * kv  # (B, H, K, V)
    o = resolve_scale(scale, q.shape[-1]) * (q.unsqueeze(-1) * read).sum(-2)
    m = trailing_ones(n)
    merged = kv + S[:, :, :m].sum(2)
    S = torch.cat([torch.zeros_like(S[:, :, :m]), merged.unsqueeze(2), S[:, :, m + 1:]], dim=2)
    return o.to(q_t.dtype), (S, count + 1)


def naive_recurrent_loglinear_attn(q: Tensor, k: Tensor, v: Tensor, g: Tensor, lam: Tensor,
                                   scale: float | None = None,
                                   initial_state: tuple[Tensor, Tensor] | None = None,
                                   output_final_state: bool = False) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """Token by token with ``loglinear_step``; O(T log T) time, O(log T) state. ``initial_state`` is the
    state of an earlier call (its tokens come first), None for the start of a sequence."""
    B, H, T, K, V = check_qkv(q, k, v)
    _check_gates(g, lam, B, H, T)
    state = empty_fenwick_state(B, H, K, V, q) if initial_state is None else initial_state
    return step_loop(loglinear_step, q, k, v, (g, lam), scale, state, output_final_state)
