"""Gated Slot Attention (GSA): M memory slots per head, each a key and a value written with a forget
gate, Ks_t = diag(alpha_t) Ks_{t-1} + (1 - alpha_t) k_t^T (and Vs_t the same with v_t), read as
o_t = Vs_t^T softmax(Ks_t q_t); two passes of gated linear attention joined by a softmax over slots.

See README.md for the chunked form; naive_* is the ground truth the tests compare against. The ops
take the write strength s_t and the log forget gate g_t separately (the paper's s_t = 1 - exp(g_t)).
"""

from .chunk import chunk_gsa
from .naive import gsa_step, naive_recurrent_gsa

__all__ = ["naive_recurrent_gsa", "chunk_gsa", "gsa_step"]
