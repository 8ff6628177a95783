"""Log-linear attention (Guo, Yang et al. 2025) with a scalar decay per head, as in log-linear Mamba-2:
O = (scale Q K^T * M_decay * M_H) V, where M_H[t, s] = lam_t^(level(t, s)) weighs O(log T) Fenwick
buckets of the prefix.

See README.md; ``naive_loglinear_attn`` (the masked matrix form) is the ground truth the tests compare
against, ``naive_recurrent_loglinear_attn`` / ``loglinear_step`` the recurrent form over the Fenwick
states, ``chunk_loglinear_attn`` the O(T log T) training form.
"""

from .chunk import chunk_loglinear_attn
from .naive import (
    empty_fenwick_state,
    fenwick_level,
    level_matrix,
    loglinear_step,
    naive_loglinear_attn,
    naive_recurrent_loglinear_attn,
    num_levels,
)

__all__ = [
    "naive_loglinear_attn",
    "naive_recurrent_loglinear_attn",
    "chunk_loglinear_attn",
    "loglinear_step",
    "empty_fenwick_state",
    "fenwick_level",
    "level_matrix",
    "num_levels",
]
