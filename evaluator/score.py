"""The score: a design's accuracy measured against reference designs under the same protocol.

For each scored metric m (an accuracy with chance level c), the best reference's value r is the
yardstick: s_m = (m - c) / max(r - c, 0.05). The score is the weighted mean of s_m with the
tier's weights. A design equal to the best reference on every metric scores 1.0; above 1.0 it
beats the best reference on the weighted whole. References are the baseline designs evaluated at
the same tier and version (averaged over their seeds), so scores are never absolute.

The byte-level LM is a gate, not part of the score (EVALUATION.md): a design whose validation
bits/byte is worse than the linear-attention reference by more than ``LM_GATE_MARGIN`` fails
with status ``lm-gate``; one below half the best reference's bits/byte is flagged
``leak-suspect``.
"""

from __future__ import annotations

from statistics import mean

from evaluator.tiers import Tier

LM_GATE_MARGIN = 0.5  # bits per byte
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
    """The relative score, or None when the tier scores nothing or no reference has the metrics."""
    if not tier.score_weights:
        return None
    table = reference_values(references)
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
    if best is not None and bpb < 0.5 * best:
        return "leak-suspect", f"validation {bpb:.3f} bits/byte is under half the best reference ({best:.3f})"
    return None
