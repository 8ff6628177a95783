"""Named evaluation outcomes.

An evaluation ends in exactly one status. ``ok`` means every check passed and every task ran;
anything else names what went wrong, so the search can tell a bad architecture from a broken
design file or a broken harness. Inside the harness a failure travels as an ``EvalFailure``
exception; at the boundary it becomes a ``(status, reason)`` pair.
"""

from __future__ import annotations

STATUSES: dict[str, str] = {
    "ok": "every check passed and every task ran",
    "syntax": "the design file does not parse",
    "unsafe": "the static scan found a forbidden import, call or attribute",
    "contract": "the file breaks the design contract (no Mixer, wrong signature, bad recurrent form)",
    "build": "constructing the Mixer raised an exception",
    "params": "the parameter count exceeds the tier's budget",
    "shape": "the output has the wrong type, shape or dtype",
    "causality": "outputs depend on future tokens",
    "nan": "a non-finite output, loss or gradient",
    "init-loss": "the loss at initialization is far from ln V",
    "gradient": "some parameter receives no gradient",
    "recurrent-mismatch": "step() disagrees with forward()",
    "kernel-mismatch": "a declared kernel disagrees with its reference",
    "error": "the design raised an exception while running",
    "oom": "the design exceeded the memory limit",
    "timeout": "the evaluation exceeded its wall-clock or CPU time limit",
    "crash": "the evaluation process died (signal or abnormal exit)",
    "tamper": "the design modified a function the harness relies on",
    "lm-gate": "language-model loss far worse than the linear-attention reference",
    "leak-suspect": "language-model loss suspiciously far below every reference",
    "inconsistent": "the same input got different outputs in two queries (randomness at inference, or "
                    "a design that behaves differently when checked)",
    "protocol": "the design's process sent a malformed, oversized or unexpected reply",
    "harness": "the evaluator itself failed; not the design's fault",
}


_OOM_MARKERS = ("can't allocate memory", "not enough memory", "out of memory", "DefaultCPUAllocator")


def is_oom(exc: BaseException) -> bool:
    """True for Python's MemoryError and torch's allocator failures under the address-space limit."""
    return isinstance(exc, MemoryError) or any(marker in str(exc) for marker in _OOM_MARKERS)


class EvalFailure(Exception):
    """Raised inside the harness to end an evaluation with a named status."""

    def __init__(self, status: str, reason: str):
        if status not in STATUSES or status == "ok":
            raise ValueError(f"unknown failure status {status!r}")
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
