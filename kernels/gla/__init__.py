"""Gated linear attention with a per-key-channel decay, S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T.

See README.md for the chunked form; naive_* is the ground truth the tests compare against.
"""

from .chunk import chunk_gla
from .naive import gla_step, naive_recurrent_gla

__all__ = ["naive_recurrent_gla", "chunk_gla", "gla_step"]
