"""Kimi Delta Attention (KDA), S_t = (I - beta_t k_t k_t^T) diag(exp(g_t)) S_{t-1} + beta_t k_t v_t^T
with a log-decay g_t per key channel.

See README.md for the chunked form; naive_* is the ground truth the tests compare against.
"""

from .chunk import chunk_kda
from .naive import kda_step, naive_recurrent_kda

__all__ = ["naive_recurrent_kda", "chunk_kda", "kda_step"]
