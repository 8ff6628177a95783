"""Analytic operation and memory-traffic counts for the recurrences.

Timing is only meaningful on a GPU; on a CPU the harness reports these counts instead, and on a
GPU they give the roofline floor below which a measured time is impossible. Counts are per call
at one shape, float32 (4 bytes per element) unless ``element_bytes`` says otherwise. A multiply-add
is two FLOPs. Bytes are the compulsory traffic (every input read once, every output written once),
which is what a floor must use: a real kernel can only move more.
"""

from __future__ import annotations

from collections.abc import Mapping

from kernels.recurrences import RECURRENCES


def _dims(shape: Mapping[str, int]) -> tuple[int, int, int, int, int]:
    missing = [d for d in "BHTKV" if d not in shape]
    if missing:
        raise ValueError(f"a recurrence shape needs B, H, T, K, V; missing {', '.join(missing)}")
    return tuple(int(shape[d]) for d in "BHTKV")  # type: ignore[return-value]


def recurrence_flops(op: str, shape: Mapping[str, int], backward: bool = False) -> int:
    """FLOPs of the token recurrence: per token and head, the state update and the read-out on the
    K x V state; the backward recomputes the forward's state update and adds the adjoint."""
    gates, _ = RECURRENCES[op]
    B, H, T, K, V = _dims(shape)
    kv = K * V
    decay, delta = "g" in gates, "beta" in gates
    update = 2 * kv + (kv if decay else 0) + (2 * kv + 2 * V if delta else 0)  # a S + k u^T (+ S^T k)
    forward = update + 2 * kv  # + scale * S^T q
    if not backward:
        return B * H * T * forward
    adjoint = 4 * 2 * kv  # dS += q do^T, dq, du = dS^T k, dk = dS u
    adjoint += (4 * kv if delta else 0) + (3 * kv if decay else 0)
    return B * H * T * (update + 2 * kv + adjoint)


def recurrence_bytes(op: str, shape: Mapping[str, int], element_bytes: int = 4, backward: bool = False) -> int:
    """Compulsory memory traffic: inputs (q, k, v, gates, initial state) read and outputs (o, final
    state) written once; the backward reads those inputs and do, and writes a gradient per input."""
    gates, per_channel = RECURRENCES[op]
    B, H, T, K, V = _dims(shape)
    gate_elems = sum(K if (name == "g" and per_channel) else 1 for name in gates)
    inputs = T * (2 * K + V + gate_elems) + K * V
    outputs = T * V + K * V
    per_head = inputs + outputs if not backward else 2 * inputs + outputs
    return B * H * per_head * element_bytes
