"""What "the same result" means when a recorded evaluation is run again.

A replay (``memory.replay``) runs a recorded evaluation again at its tier, version and seed and
compares the two metric by metric with ``compare``. What "the same" means depends on the metric's
kind (``evaluator.metrics``):

- **structural** (parameter counts, state size, FLOPs per token): functions of the code and the
  tier's shapes only. Compared exactly, on any machine.
- **accuracy** (``*_acc``) and **loss** (``*loss*``, ``*bpb*``): produced by seeded training. On the
  machine, torch build and thread count of the record an evaluation is deterministic: data, weights
  and batches come from seeded generators and training runs on one thread (measured: the
  linear-attention baseline at the smoke tier, seed 0, recorded during a two-worker run and replayed
  twice alone, matched every compared metric exactly, at the precision the harness records). So a
  replay there matches exactly. On other hardware float rounding differs (another BLAS kernel, other
  SIMD widths) and training amplifies it, so accuracies may move by a few test items and losses by
  a few percent. The per-tier tolerances in ``TOLERANCES`` bound that: an absolute difference for
  accuracies, a relative one for losses. A replay that needed them is "reproduced" but not "exact".
- **machine** (throughput, wall times, memory, the measured scaling exponents and the flag derived
  from them): properties of the machine and its load, not of the design. Shown for information and
  never compared.
- **drawn** (a kernel check's hidden seed and the errors measured on the shapes it draws): drawn
  afresh in every evaluation so a kernel cannot be fitted to them, hence never the same twice. Shown
  for information and never compared; the check's verdict is in the status, which is compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evaluator.metrics import kind as metric_kind

# What an evaluation's environment records that can change a result (or explain why one changed).
ENVIRONMENT_KEYS = ("torch", "python", "device", "threads", "cpu", "platform", "project_commit")


@dataclass(frozen=True)
class Tolerance:
    """How far a replay on other hardware may land from the record and still count as reproduced.

    accuracy: absolute, in accuracy units (0.02 is two points, about 160 of the ~8,000 queries the
    smoke tier tests); loss: relative (0.05 is 5%). Larger test sets (the full tier) allow less.
    """

    accuracy: float
    loss: float


TOLERANCES: dict[str, Tolerance] = {
    "check": Tolerance(accuracy=0.0, loss=1e-3),  # only the loss at initialization: no training to amplify rounding
    "smoke": Tolerance(accuracy=0.02, loss=0.05),
    "quick": Tolerance(accuracy=0.02, loss=0.05),
    "full": Tolerance(accuracy=0.01, loss=0.02),
    "full-tiny": Tolerance(accuracy=1 / 16, loss=0.05),  # 16 test items: one item is 1/16
}


@dataclass(frozen=True)
class MetricDiff:
    """One metric, recorded versus replayed. status: exact | within | differs | missing | informational."""

    metric: str
    kind: str
    recorded: float | bool | None
    replayed: float | bool | None
    tolerance: float | None  # absolute for accuracies, relative for losses, 0 for structural, else None
    status: str


def compare_metric(metric: str, recorded, replayed, tolerance: Tolerance) -> MetricDiff:
    kind = metric_kind(metric)
    if kind in ("machine", "drawn"):
        return MetricDiff(metric, kind, recorded, replayed, None, "informational")
    allowed = {"accuracy": tolerance.accuracy, "loss": tolerance.loss}.get(kind, 0.0)
    if recorded is None or replayed is None:
        return MetricDiff(metric, kind, recorded, replayed, allowed, "missing")
    if recorded == replayed:
        return MetricDiff(metric, kind, recorded, replayed, allowed, "exact")
    if kind == "accuracy":
        within = abs(replayed - recorded) <= allowed + 1e-12
    else:
        within = kind == "loss" and math.isclose(replayed, recorded, rel_tol=allowed)
    return MetricDiff(metric, kind, recorded, replayed, allowed, "within" if within else "differs")


def compare(recorded: dict, replayed: dict, tier: str) -> list[MetricDiff]:
    """Every metric either side has, in a stable order: compared ones first, then informational ones."""
    tolerance = TOLERANCES.get(tier, TOLERANCES["smoke"])
    diffs = [compare_metric(m, recorded.get(m), replayed.get(m), tolerance) for m in sorted({*recorded, *replayed})]
    return sorted(diffs, key=lambda d: (d.status == "informational", d.metric))


def environment_changes(recorded: dict | None, now: dict) -> dict[str, list]:
    recorded = recorded or {}
    return {key: [recorded.get(key), now.get(key)] for key in ENVIRONMENT_KEYS
            if recorded.get(key) != now.get(key)}
