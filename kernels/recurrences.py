"""The five recurrences and the gate arguments each takes, shared by the ``KERNELS`` contract
(``kernels.spec``), the kernel emitter and the analytic counts (``kernels.harness.flops``)."""

# op -> (gate arguments after v, g per key channel)
RECURRENCES: dict[str, tuple[tuple[str, ...], bool]] = {
    "linear_attn": ((), False),
    "simple_gla": (("g",), False),
    "gla": (("g",), True),
    "delta_rule": (("beta",), False),
    "gated_delta_rule": (("g", "beta"), False),
}
