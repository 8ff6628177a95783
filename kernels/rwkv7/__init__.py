"""RWKV-7's generalized delta rule, S_t = (diag(exp(g_t)) - (a_t * kappa_t) kappa_t^T) S_{t-1} + k_t v_t^T
(column convention: S is (K, V), o = S^T q), with a per-channel decay exp(g_t), a vector-valued
in-context learning rate a_t, a removal key kappa_t and a replacement key k_t.

See README.md for the chunked form; naive_* is the ground truth the tests compare against.
"""

from .chunk import chunk_rwkv7
from .naive import naive_recurrent_rwkv7, rwkv7_step

__all__ = ["naive_recurrent_rwkv7", "chunk_rwkv7", "rwkv7_step"]
