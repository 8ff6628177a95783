"""PaTH attention (Yang et al. 2025): softmax attention whose position encoding is a product of
data-dependent Householder-like transforms H_s = I - beta_s w_s w_s^T, one per token between the key
and the query: the score of key j at query i is q_i^T (H_i ... H_{j+1}) k_j / sqrt(K).

See README.md. ``naive_path_attn`` (explicit products, the masked form) is the ground truth the tests
compare against; ``naive_recurrent_path_attn`` / ``path_step`` the recurrent form over a key cache that
every token transforms; ``chunk_path_attn`` the blockwise O(T^2 K) training form.
"""

from .chunk import chunk_path_attn
from .naive import empty_path_state, naive_path_attn, naive_recurrent_path_attn, path_step

__all__ = ["naive_path_attn", "naive_recurrent_path_attn", "chunk_path_attn", "path_step", "empty_path_state"]
