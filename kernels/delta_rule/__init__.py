"""The delta rule (DeltaNet), S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T.

See README.md for the chunked form; naive_* is the ground truth the tests compare against.
"""

from .chunk import chunk_delta_rule
from .naive import delta_rule_step, naive_recurrent_delta_rule

__all__ = ["naive_recurrent_delta_rule", "chunk_delta_rule", "delta_rule_step"]
