"""The score: a design's accuracy measured against reference designs under the same protocol and
of the same cost.

For each scored metric m (an accuracy with chance level c), the best eligible reference's value r is
the yardstick: s_m = (m - c) / max(r - c, 0.05). The score is the weighted mean of s_m with the
tier's weights. Eligible references are those of the design's cost class or a cheaper one
(``evaluator.cost``): a constant-state design is measured against the best constant-state reference,
not against softmax attention, which is the ceiling only quadratic (and unproven) designs face. A
design equal to the best eligible reference on every metric scores 1.0; above 1.0 it beats it on the
weighted whole. References are the baseline designs evaluated at the same tier and version
(averaged over their seeds), so scores are never absolute.

The byte-level LM is a gate, not part of the score (EVALUATION.md): a design whose validation
bits/byte is worse than the linear-attention reference by more than ``LM_GATE_MARGIN`` fails
with status ``lm-gate``; one below half the best reference's bits/byte is flagged
``leak-suspect``.
"""

from __future__ import annotations

from statistics import mean

from evaluator import cost
from evaluator.metrics import threshold
from evaluator.tiers import Tier

LM_GATE_MARGIN = threshold("lm_gate_margin")  # bits per byte
LEAK_SUSPECT = threshold("leak_suspect")  # of the best reference's bits per byte
LM_GATE_REFERENCE = "linear_attention"
MIN_SPREAD = 0.05


def reference_values(references: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """{reference name: {metric: mean over seeds}} from {name: [metrics, ...]}."""
    table = {}
    for name, runs in references.items():
        keys = set().union(*(r.keys() for r in runs)) if runs else set()
        table[name] = {k: mean(r[k] for r in runs if isinstance(r.get(k), (int, float))) for k in keys
                       if any(isinstance(r.get(k), (int, float)) for r in runs)}
    return table


def score(metrics: dict, tier: Tier, references: dict[str, list[dict]]) -> float | None:
    """The relative score against the best reference of the design's cost class or a cheaper one, or None
    when the tier scores nothing or no such reference has the metrics."""
    if not tier.score_weights:
        return None
    table = reference_values(references)
    classes = {name: runs[0] if runs else {} for name, runs in references.items()}
    table = {name: table[name] for name in cost.eligible(cost.of(metrics), classes) if name in table}
    total = weight_sum = 0.0
    for metric, weight in tier.score_weights.items():
        values = [row[metric] for row in table.values() if metric in row]
        if metric not in metrics or not values:
            return None
        chance = tier.chance.get(metric, 0.0)
        total += weight * (metrics[metric] - chance) / max(max(values) - chance, MIN_SPREAD)
        weight_sum += weight
    return round(total / weight_sum, 4)


def gate(metrics: dict, references: dict[str, list[dict]]) -> tuple[str, str] | None:
    """(status, reason) when the LM gate fails, else None (also when it cannot be applied)."""
    if "lm_bpb" not in metrics:
        return None
    table = reference_values(references)
    bpb = metrics["lm_bpb"]
    linear = table.get(LM_GATE_REFERENCE, {}).get("lm_bpb")
    if linear is not None and bpb > linear + LM_GATE_MARGIN:
        return "lm-gate", (f"validation {bpb:.3f} bits/byte; linear attention reaches {linear:.3f} "
                           f"(+{LM_GATE_MARGIN} allowed)")
    best = min((row["lm_bpb"] for row in table.values() if "lm_bpb" in row), default=None)
    if best is not None and bpb < LEAK_SUSPECT * best:
        return "leak-suspect", (f"validation {bpb:.3f} bits/byte is under {LEAK_SUSPECT:g} of the best reference's "
                                f"({best:.3f})")
    return None


def quality(metrics: dict, tier: Tier) -> float | None:
    """A result's quality on one absolute scale, for comparing across cost classes (the Pareto front): the
    weighted mean over scored metrics of (m - c) / (1 - c), 0 at chance and 1 when perfect."""
    if not tier.score_weights or any(m not in metrics for m in tier.score_weights):
        return None
    total = sum(w * (metrics[m] - tier.chance.get(m, 0.0)) / (1.0 - tier.chance.get(m, 0.0))
                for m, w in tier.score_weights.items())
    return round(total / sum(tier.score_weights.values()), 4)
