"""Reference building blocks that designs may import.

A design file may import from these modules (and nothing else in the project):

Recurrences, head-first layout q, k: (B, H, T, K), v: (B, H, T, V), state (B, H, K, V); each has a
token-loop reference ``naive_recurrent_*``, a chunked form ``chunk_*`` for training and a single-token
``*_step`` for recurrent inference:

- ``kernels.linear_attn``: ``chunk_linear_attn``, ``naive_recurrent_linear_attn``, ``linear_attn_step``
- ``kernels.simple_gla`` (scalar decay per head): ``chunk_simple_gla``, ``naive_recurrent_simple_gla``,
  ``simple_gla_step``
- ``kernels.gla`` (per-channel decay): ``chunk_gla``, ``naive_recurrent_gla``, ``gla_step``
- ``kernels.delta_rule``: ``chunk_delta_rule``, ``naive_recurrent_delta_rule``, ``delta_rule_step``
- ``kernels.gated_delta_rule``: ``chunk_gated_delta_rule``, ``naive_recurrent_gated_delta_rule``,
  ``gated_delta_rule_step``
- ``kernels.kda`` (Kimi Delta Attention: the gated delta rule with a per-channel decay): ``chunk_kda``,
  ``naive_recurrent_kda``, ``kda_step``
- ``kernels.rwkv7`` (RWKV-7's generalized delta rule: per-channel decay, vector learning rate, separate
  removal and replacement keys): ``chunk_rwkv7``, ``naive_recurrent_rwkv7``, ``rwkv7_step``
- ``kernels.gsa`` (Gated Slot Attention: M gated key and value slots read through a softmax over the
  slots, two GLA-like passes): ``chunk_gsa``, ``naive_recurrent_gsa``, ``gsa_step``; the state is a pair
  (key slots (B, H, M, K), value slots (B, H, M, V))
- ``kernels.loglinear`` (log-linear attention over a scalar decay: O(log T) Fenwick states, mixed by
  per-level weights): ``chunk_loglinear_attn``, ``naive_loglinear_attn``, ``naive_recurrent_loglinear_attn``,
  ``loglinear_step``, ``empty_fenwick_state``, ``num_levels``
- ``kernels.path`` (PaTH attention: causal softmax attention whose keys reach each query through the
  product of per-token transforms H_s = I - beta_s w_s w_s^T in between, in place of RoPE): ``chunk_path_attn``,
  ``naive_path_attn``, ``naive_recurrent_path_attn``, ``path_step``, ``empty_path_state``; the state is a
  key and a value cache (B, H, n, K), (B, H, n, V) whose keys every token transforms

Small blocks:

- ``kernels.conv``: ``ShortConvolution`` (causal depthwise conv with ``init_state``/``step``)
- ``kernels.norm``: ``RMSNorm``, ``GatedRMSNorm``, ``l2_normalize``
- ``kernels.feature_maps``: ``feature_map(name)``, ``feature_dim(name, K)``, ``FEATURE_MAPS``
- ``kernels.attention``: ``softmax_attention``, ``sliding_window_attention``, ``RotaryEmbedding``

Triton kernels (forward and backward, wired into autograd) for the first five recurrences (``kda``,
``rwkv7``, ``loglinear`` and ``path`` run their PyTorch chunked forms on every device; ``gsa``'s first pass
runs in PyTorch and its second is ``chunk_gla``):
``kernels.<op>.triton.triton_<op>``, the chunked form with tl.dot (``kernels.triton_chunk``,
``kernels.triton_chunk_delta``), which the chunked ops call on a GPU, and
``kernels.<op>.triton.fused_recurrent_<op>``, token by token (``kernels.triton_recurrence``).
``kernels.spec`` defines the ``KERNELS`` contract (``KernelSpec``, ``recurrence_spec``);
``kernels.harness`` checks and times declared kernels (designs may not import it).

This package must stay importable without the evaluator, so nothing is imported eagerly here.
"""
