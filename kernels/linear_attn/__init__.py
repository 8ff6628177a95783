"""Linear attention, S_t = S_{t-1} + k_t v_t^T: naive loop, chunked form and single-token step.

See README.md for the chunked form; naive_* is the ground truth the tests compare against.
"""

from .chunk import chunk_linear_attn
from .naive import linear_attn_step, naive_recurrent_linear_attn
from .taylor import chunk_taylor_linear_attn

__all__ = ["naive_recurrent_linear_attn", "chunk_linear_attn", "chunk_taylor_linear_attn", "linear_attn_step"]
