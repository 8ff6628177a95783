"""What the agents see: the ``Context`` built from memory (agents never query the database).

A ``ContextBuilder`` follows one tier and version through a run. It reads only what changed since
its last call (designs, evaluations and analyses with higher ids, and the evaluations it saw still
running), keeps each design's best evaluation and its score per seed, and assembles a context from
that (the top ranked by the mean over seeds, ``memory.racing``), so a context
costs the same after ten thousand designs as after ten. Scores it has read are not read again: build
it after references are seeded (seeding rescores), as the loop does.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field

from agents.base import Context, DesignSummary
from agents.offline.space import LATE_CHOICES, applicable, family, is_valid
from memory.db import INTERRUPTED, RUNNING
from memory.dedup import code_hash
from memory.protocols import Views
from memory.records import Design, Evaluation
from memory.twins import Twins

JUDGE_SUFFIX = "-judge"  # a judge's qualitative note sits beside the analysis and is not one


@dataclass(frozen=True)
class KnownCode:
    """Whether a design file is already in memory, as dedup's first layer (the whitespace-normalized
    hash) would find it. A value, so two contexts over the same memory compare equal."""

    hashes: frozenset[str]

    def __call__(self, code: str) -> bool:
        return code_hash(code) in self.hashes


@dataclass
class _Seen:
    """One design and what the builder knows of its evaluations at the tier."""

    design: Design
    best_ok: Evaluation | None = None  # highest score among ok ones (the earliest on ties)
    latest: Evaluation | None = None  # the latest finished one
    analysis: str | None = None  # the latest analyst's text
    scores: dict[int, float] = field(default_factory=dict)  # seed -> score of its first ok evaluation, no replays

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores)

    def evaluation(self) -> Evaluation | None:
        """Its representative evaluation: the best ok one, else the latest finished one."""
        return self.best_ok or self.latest


class ContextBuilder:
    def __init__(self, views: Views, tier: str, version: int, seed: int, top_k: int = 8, recent_k: int = 8):
        self.views, self.tier, self.version, self.seed = views, tier, version, seed
        self.top_k, self.recent_k = top_k, recent_k
        self._designs: dict[int, _Seen] = {}
        self._running: set[int] = set()  # evaluations at the tier seen in flight: read again until they end
        self._last = {"design": 0, "evaluation": 0, "analysis": 0}
        self._twins = Twins()

    def context(self, iteration: int, racing: Collection[int] = ()) -> Context:
        """What the agents see at ``iteration``; ``racing``: designs still owed seeds (``memory.racing``), kept
        out of the top, from which parents are drawn, until their race ends. Twins (``memory.twins``) are kept
        out of the top and the elites too, their originals standing for them; the recent list names them."""
        self._catch_up()
        seen = list(self._designs.values())
        racing = frozenset(racing)
        twins = self._twins.of()
        scored = [s for s in seen if s.scores and s.design.id not in racing and s.design.id not in twins]
        scored.sort(key=lambda s: (-s.mean, -len(s.scores), s.design.id))

        def summary(s: _Seen, evaluation: Evaluation | None) -> DesignSummary:
            return _summary(s, evaluation, s.analysis if s.design.origin != "baseline" else None,
                            s.design.id in racing, twins.get(s.design.id))

        top = tuple(summary(s, s.best_ok) for s in scored[:self.top_k])
        niches: dict[tuple[str, str], _Seen] = {}
        for s in scored:  # best first: the first of each niche is its elite
            if s.design.origin != "baseline":
                niches.setdefault((str((s.best_ok.metrics or {}).get("cost_class")), family(s.design.spec)), s)
        elites = tuple(summary(s, s.best_ok) for s in niches.values())
        baselines = tuple(summary(s, s.evaluation()) for s in seen if s.design.origin == "baseline")
        searched = [s for s in seen if s.design.origin != "baseline"][-self.recent_k:]
        recent = tuple(summary(s, s.evaluation()) for s in reversed(searched))
        return Context(tier=self.tier, iteration=iteration, seed=self.seed, top=top, baselines=baselines,
                       recent=recent, choice_stats=self._choice_stats(seen, racing),
                       is_known=KnownCode(frozenset(s.design.code_hash for s in seen)), elites=elites)

    def _catch_up(self) -> None:
        for design in self.views.designs_after(self._last["design"]):
            self._designs[design.id] = _Seen(design)
            self._last["design"] = design.id
        fresh = self.views.evaluations_after(self._last["evaluation"], self.tier, self.version)
        again = self.views.evaluations_by_id(sorted(self._running)) if self._running else []
        for evaluation in sorted([*again, *fresh], key=lambda e: e.id):
            self._last["evaluation"] = max(self._last["evaluation"], evaluation.id)
            self._see(evaluation)
        for row in self.views.analyses_after(self._last["analysis"]):
            self._last["analysis"] = row["id"]
            if not row["author"].endswith(JUDGE_SUFFIX) and row["design_id"] in self._designs:
                self._designs[row["design_id"]].analysis = row["text"]

    def _see(self, evaluation: Evaluation) -> None:
        if evaluation.status == RUNNING:
            self._running.add(evaluation.id)
            return
        self._running.discard(evaluation.id)
        seen = self._designs.get(evaluation.design_id)
        if seen is None or evaluation.status == INTERRUPTED:
            return
        if seen.latest is None or evaluation.id > seen.latest.id:
            seen.latest = evaluation
        if evaluation.status == "ok" and evaluation.purpose != "replay":  # as Records.twins reads them
            self._twins.add(seen.design.id, evaluation.seed, evaluation.metrics, seen.design.origin == "baseline")
        if evaluation.status == "ok" and evaluation.score is not None:
            if evaluation.purpose != "replay":
                seen.scores.setdefault(evaluation.seed, evaluation.score)
            best = seen.best_ok
            if best is None or (evaluation.score, -evaluation.id) > (best.score, -best.id):
                seen.best_ok = evaluation

    def _choice_stats(self, seen: list[_Seen], racing: Collection[int] = ()) -> dict:
        """{choice: {str(value): {"n", "mean_score", "fails"}}} over designs with a point and a finished
        evaluation at the tier, their races over: how many, the mean of their means over seeds, how many
        never passed."""
        groups: dict[tuple[str, str], list[float | None]] = {}
        for s in seen:
            if s.design.spec is None or s.latest is None or s.design.id in racing:
                continue
            best = s.mean if s.scores else None
            for choice, value in _with_late_defaults(s.design.spec).items():
                groups.setdefault((choice, json.dumps(value, sort_keys=True)), []).append(best)
        stats: dict = {}
        for (choice, value), best in sorted(groups.items()):
            scores = [b for b in best if b is not None]
            stats.setdefault(choice, {})[str(json.loads(value))] = {
                "n": len(best), "mean_score": sum(scores) / len(scores) if scores else None,
                "fails": len(best) - len(scores)}
        return stats


def _with_late_defaults(spec: dict) -> dict:
    """A valid point with each late choice that applies to it at its default, which its canonical form leaves
    out, so a late choice's statistics also count the designs that kept the default."""
    if not is_valid(spec):
        return spec
    return {**spec, **{c: v for c, v in LATE_CHOICES.items() if c in applicable(spec) and c not in spec}}


def _summary(seen: _Seen, evaluation: Evaluation | None, analysis: str | None, racing: bool,
             twin_of: int | None = None) -> DesignSummary:
    """A design as the agents see it: its score is the mean over its seeds, ``evaluation`` gives the rest."""
    design = seen.design
    return DesignSummary(
        id=design.id, name=design.name, origin=design.origin, spec=design.spec,
        score=seen.mean if seen.scores else evaluation.score if evaluation else None,
        metrics=(evaluation.metrics or {}) if evaluation else {},
        status=evaluation.status if evaluation else "unevaluated",
        parents=tuple(design.parents), code=design.code, analysis=analysis,
        seed_scores=tuple(score for _, score in sorted(seen.scores.items())), racing=racing, twin_of=twin_of,
    )
