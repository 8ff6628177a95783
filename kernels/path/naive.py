"""PaTH attention: the masked form with explicit Householder products (the ground truth), the token
step over a transformed key cache, and the token loop built on it.

Layout as in the other ops: q, k, w (B, H, T, K), v (B, H, T, V), beta (B, H, T). Token s carries the
generalized Householder transform H_s = I - beta_s w_s w_s^T, and query i scores key j <= i as

    scale * q_i^T (H_i H_{i-1} ... H_{j+1}) k_j        (the empty product, I, for j = i)

before a causal softmax over j. README.md has the derivations and costs.
"""

import torch
from torch import Tensor

from ..utils import check_qkv, check_shape, compute_dtype, resolve_scale, step_loop

PathState = tuple[Tensor, Tensor]  # (keys (B, H, n, K) transformed to the present, values (B, H, n, V))


def check_path_inputs(q: Tensor, k: Tensor, v: Tensor, w: Tensor, beta: Tensor) -> tuple[int, int, int, int, int]:
    """Validate the layout of PaTH's inputs and return (B, H, T, K, V)."""
    B, H, T, K, V = check_qkv(q, k, v)
    check_shape("w", w, (B, H, T, K))
    check_shape("beta", beta, (B, H, T))
    return B, H, T, K, V


def naive_path_attn(q: Tensor, k: Tensor, v: Tensor, w: Tensor, beta: Tensor, scale: float | None = None) -> Tensor:
    """Causal softmax attention with PaTH's position encoding, straight from the definition.

    Every H_s is built as a K x K matrix and the products H_i ... H_{j+1} are multiplied out, one query
    row at a time: O(T^2 K^2) time, for tests at small sizes. w need not be normalized here (the
    layers normalize it, so that H_s has eigenvalues 1 and 1 - beta_s). Returns o (B, H, T, V).
    """
    B, H, T, K, V = check_path_inputs(q, k, v, w, beta)
    dtype = compute_dtype(q)
    q, k, v, w, beta = (x.to(dtype) for x in (q, k, v, w, beta))
    eye = torch.eye(K, dtype=dtype, device=q.device)
    householder = eye - beta[..., None, None] * w.unsqueeze(-1) * w.unsqueeze(-2)  # (B, H, T, K, K)
    products = q.new_zeros(B, H, 0, K, K, dtype=dtype)  # [.., j, :, :] = H_{i-1} ... H_{j+1} before row i
    rows = []
    for i in range(T):
        # H_i joins on the left of every earlier key's product; key i itself starts from the identity
        products = torch.cat([householder[:, :, i, None] @ products, eye.expand(B, H, 1, K, K)], dim=2)
        transformed_keys = (products @ k[:, :, : i + 1, :, None]).squeeze(-1)  # (B, H, i + 1, K)
        logits = transformed_keys @ q[:, :, i, :, None]  # (B, H, i + 1, 1)
        rows.append(torch.cat([logits.squeeze(-1), logits.new_full((B, H, T - i - 1), float("-inf"))], dim=-1))
    if not rows:
        return q.new_zeros(B, H, 0, V, dtype=dtype)
    scores = resolve_scale(scale, K) * torch.stack(rows, dim=2)  # (B, H, T, T), -inf above the diagonal
    return scores.softmax(-1) @ v


def empty_path_state(B: int, H: int, K: int, V: int, like: Tensor, dtype: torch.dtype | None = None) -> PathState:
    """The state before the first token: an empty key cache and an empty value cache."""
    dtype = dtype or compute_dtype(like)
    return like.new_zeros(B, H, 0, K, dtype=dtype), like.new_zeros(B, H, 0, V, dtype=dtype)


def path_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, w_t: Tensor, beta_t: Tensor, state: PathState,
              scale: float | None = None) -> tuple[Tensor, PathState]:
    """One token of PaTH attention over a key-value cache.

    Every cached key is moved through H_t = I - beta_t w_t w_t^T (H_t is symmetric, so the row k^T H_t
    is k - beta_t (k . w_t) w_t), then k_t and v_t are appended, then q_t attends over the cache:

        keys_j <- H_t keys_j (j < t);  keys_t = k_t;  o_t = softmax(scale * keys q_t)^T values

    so after token i the cache holds H_i ... H_{j+1} k_j, the keys the scores of every later query need.
    q_t, k_t, w_t: (B, H, K); v_t: (B, H, V); beta_t: (B, H); state (keys (B, H, n, K), values
    (B, H, n, V)), from ``empty_path_state`` at the start. O(n K) per token; the state grows by K + V
    numbers per head and token, as attention's cache does.
    """
    dtype = compute_dtype(q_t)
    q, k, v, w, beta = (x.to(dtype) for x in (q_t, k_t, v_t, w_t, beta_t))
    keys, values = (x.to(dtype) for x in state)
    along_w = (keys @ w.unsqueeze(-1)) * beta[..., None, None]  # (B, H, n, 1)
    keys = torch.cat([keys - along_w * w.unsqueeze(-2), k.unsqueeze(-2)], dim=-2)
    values = torch.cat([values, v.unsqueeze(-2)], dim=-2)
    weights = (resolve_scale(scale, q.shape[-1]) * (keys @ q.unsqueeze(-1))).softmax(-2)  # (B, H, n + 1, 1)
    o = (weights * values).sum(-2)  # (B, H, V)
    return o.to(q_t.dtype), (keys, values)


def naive_recurrent_path_attn(q: Tensor, k: Tensor, v: Tensor, w: Tensor, beta: Tensor, scale: float | None = None,
                              initial_state: PathState | None = None,
                              output_final_state: bool = False) -> tuple[Tensor, PathState | None]:
    """Token by token with ``path_step``: O(T^2 K) time, a cache of T keys and values.

    ``initial_state`` is the cache of an earlier call (its tokens come first), None for an empty one.
    Returns (o (B, H, T, V), (keys, values) or None).
    """
    B, H, T, K, V = check_path_inputs(q, k, v, w, beta)
    if initial_state is None:
        state = empty_path_state(B, H, K, V, q)
    else:
        keys, values = initial_state
        n = keys.shape[2] if keys.dim() == 4 else -1
        check_shape("initial_state[0] (keys)", keys, (B, H, n, K))
        check_shape("initial_state[1] (values)", values, (B, H, n, V))
        state = keys, values
    if T == 0:
        return q.new_zeros(B, H, 0, V), state if output_final_state else None
    return step_loop(path_step, q, k, v, (w, beta), scale, state, output_final_state)
