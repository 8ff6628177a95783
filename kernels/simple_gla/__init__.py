"""Scalar-gated linear attention (RetNet, Mamba2-style), S_t = exp(g_t) S_{t-1} + k_t v_t^T.

See README.md for the chunked form; naive_* is the ground truth the tests compare against.
"""

from .chunk import chunk_simple_gla
from .naive import naive_recurrent_simple_gla, simple_gla_step

__all__ = ["naive_recurrent_simple_gla", "chunk_simple_gla", "simple_gla_step"]
