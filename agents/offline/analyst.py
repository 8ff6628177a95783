"""The offline analyst: attributes an outcome to the choices that changed from the parent.

The text is short and factual (later prompts and the UI read it); ``data`` holds the same facts as
numbers. Per-choice statistics are the database's job; here each changed choice gets an equal share
of the score change as its credit, which is exact for single-choice mutations.
"""

from __future__ import annotations

from agents.base import Analysis, Context, DesignSummary, Outcome
from agents.offline.space import canonical, diff, is_valid

REPORTED_METRICS = ("mqar_acc", "parity_acc", "lm_bpb")


def _metric_deltas(new: dict, old: dict) -> dict[str, float]:
    return {m: round(new[m] - old[m], 4) for m in REPORTED_METRICS
            if isinstance(new.get(m), (int, float)) and isinstance(old.get(m), (int, float))}


def _changes(changed: dict) -> str:
    return ", ".join(f"{c} {old} -> {new}" for c, (old, new) in changed.items())


class OfflineAnalyst:
    def analyse(self, outcome: Outcome, context: Context) -> Analysis:
        spec = outcome.proposal.spec if outcome.proposal.spec and is_valid(outcome.proposal.spec) else None
        parents = [p for p in (context.design(i) for i in outcome.proposal.parents) if p is not None]
        parent: DesignSummary | None = next((p for p in parents if p.spec and is_valid(p.spec)), None)
        name = outcome.proposal.name
        data: dict = {"status": outcome.status, "score": outcome.score, "parent_id": None,
                      "parent_score": None, "changed": {}, "delta_score": None, "credit": {}}
        sentences = []
        if outcome.status == "ok":
            score = "no score" if outcome.score is None else f"{outcome.score:.3f}"
            sentences.append(f"{name} scored {score}.")
        else:
            sentences.append(f"{name} failed with {outcome.status}: {outcome.reason}.")
        if parent is not None and spec is not None:
            changed = diff(parent.spec, spec)
            data.update(parent_id=parent.id, parent_score=parent.score, changed=changed,
                        metric_deltas=_metric_deltas(outcome.metrics, parent.metrics))
            if outcome.score is not None and parent.score is not None:
                delta = round(outcome.score - parent.score, 4)
                data["delta_score"] = delta
                data["credit"] = {c: round(delta / len(changed), 4) for c in changed} if changed else {}
                sentences.append(f"Against parent #{parent.id} {parent.name} ({parent.score:.3f}): "
                                 f"{delta:+.3f} from {_changes(changed) or 'no change of choices'}.")
            elif outcome.status != "ok":
                suspects = ", ".join(changed) or "the parent"
                sentences.append(f"It changed {_changes(changed) or 'nothing'} from parent #{parent.id} "
                                 f"{parent.name}, so the failure points at {suspects}.")
            else:
                sentences.append(f"Changed from parent #{parent.id} {parent.name}: {_changes(changed)}.")
            if len(parents) > 1:
                second = parents[1]
                taken = [c for c in changed if second.spec and canonical(second.spec).get(c) == spec.get(c)]
                data["second_parent_id"] = second.id
                data["from_second_parent"] = taken
        elif spec is None:
            sentences.append("It has no design-space point, so no choice can be credited.")
        scored = [b for b in context.baselines if b.score is not None]
        if scored:
            best = max(scored, key=lambda b: b.score)
            data["best_baseline"] = {"id": best.id, "name": best.name, "score": best.score}
            if outcome.score is not None:
                data["vs_best_baseline"] = round(outcome.score - best.score, 4)
                sentences.append(f"Best baseline {best.name} scores {best.score:.3f} "
                                 f"({outcome.score - best.score:+.3f} for this design).")
        shown = [f"{m} {outcome.metrics[m]:.3f}" for m in REPORTED_METRICS
                 if isinstance(outcome.metrics.get(m), (int, float))]
        if shown:
            sentences.append(f"Metrics: {', '.join(shown)}.")
        return Analysis(" ".join(sentences), data)
