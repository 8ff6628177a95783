"""Offline researchers: evolutionary search over the design space, and a uniform random baseline.

``OfflineResearcher`` picks parents from memory (mostly the best designs by their mean over seeds,
sometimes the elite of a niche of the archive, a cost class and family drawn uniformly, sometimes any
recorded one; never a design still owed seeds by racing, except at random), then mutates one or two
choices or crosses two parents. Values are chosen by an upper confidence bound over the context's
per-choice statistics: the mean score of designs with that value, plus an exploration bonus for values
tried rarely, minus a penalty for values that often failed. Points whose rendered file is already in
memory are skipped, so budget goes to new designs.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping

from agents.base import Context, DesignSummary, Proposal
from agents.offline.render import render_point
from agents.offline.space import (
    CHOICE_BY_NAME,
    LATE_CHOICES,
    applicable,
    canonical,
    complete,
    diff,
    is_valid,
    point_name,
    random_point,
    relevant,
    repair,
)


def _key(point: Mapping) -> str:
    return json.dumps(canonical(point), sort_keys=True)


def _fmt(score: float | None) -> str:
    return "unscored" if score is None else f"{score:.3f}"


class _Novelty:
    """What the researcher must not propose again: points in memory, and design files in memory or
    proposed before."""

    def __init__(self, context: Context, proposed: set[str]):
        self.is_known, self.proposed = context.is_known, proposed
        self.points = {_key(d.spec) for d in context.designs() if d.spec is not None and is_valid(d.spec)}

    def is_new(self, point: Mapping) -> bool:
        if _key(point) in self.points:
            return False
        code = render_point(point)
        return code not in self.proposed and not self.is_known(code)


class ValueStats:
    """Upper confidence bounds per (choice, value) from the context's choice statistics."""

    def __init__(self, choice_stats: Mapping, explore: float, fail_penalty: float):
        self.stats, self.explore, self.fail_penalty = choice_stats, explore, fail_penalty
        means = [s["mean_score"] for values in choice_stats.values() for s in values.values()
                 if s.get("mean_score") is not None]
        self.prior = sum(means) / len(means) if means else 0.0  # an untried value is assumed average

    def entry(self, choice: str, value) -> dict:
        return self.stats.get(choice, {}).get(str(value), {"n": 0, "mean_score": None, "fails": 0})

    def mean(self, choice: str, value) -> float:
        s = self.entry(choice, value)
        mean = self.prior if s.get("mean_score") is None else s["mean_score"]
        return mean - self.fail_penalty * s.get("fails", 0) / max(s.get("n", 0), 1)

    def ucb(self, choice: str, value) -> float:
        total = sum(s.get("n", 0) for s in self.stats.get(choice, {}).values())
        bonus = self.explore * math.sqrt(math.log(total + 1) / (self.entry(choice, value).get("n", 0) + 1))
        return self.mean(choice, value) + bonus

    def evidence(self, choice: str, new, old=None) -> str:
        """A sentence fragment citing what the statistics say about ``choice=new`` (against ``old``)."""
        s = self.entry(choice, new)
        if not s.get("n"):
            return f"{choice}={new} is untried at this tier (exploration)"
        text = f"{choice}={new} averaged {_fmt(s.get('mean_score'))} over {s['n']} design(s)"
        if s.get("fails"):
            text += f", {s['fails']} failed"
        o = self.entry(choice, old) if old is not None else None
        if o and o.get("n"):
            text += f" vs {_fmt(o.get('mean_score'))} over {o['n']} for {old}"
        return text


class OfflineResearcher:
    """Mutation and crossover of recorded designs, guided by per-choice statistics.

    ``explore`` is both the probability of choosing a parent or a change at random rather than by
    score, and the weight of the UCB exploration bonus (scores are O(1), relative to references).
    ``crossover`` is the probability of crossing two parents rather than mutating one. ``niche`` is the
    probability that a parent chosen by score is instead the elite of a niche drawn uniformly
    (``Context.elites``), so the search keeps a front rather than one point.
    """

    def __init__(self, seed: int = 0, explore: float = 0.25, crossover: float = 0.3,
                 fail_penalty: float = 0.5, max_tries: int = 200, niche: float = 0.25):
        if not all(0.0 <= p <= 1.0 for p in (explore, crossover, niche)):
            raise ValueError(f"explore, crossover and niche are probabilities, got {explore}, {crossover} and {niche}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.rng = random.Random(seed)
        self.explore, self.crossover, self.fail_penalty, self.niche = explore, crossover, fail_penalty, niche
        self.max_tries = max_tries
        self.proposed: set[str] = set()  # design files this researcher proposed, evaluated or not yet

    def propose(self, context: Context) -> Proposal:
        stats = ValueStats(context.choice_stats, self.explore, self.fail_penalty)
        novelty = _Novelty(context, self.proposed)
        pool = [d for d in context.designs() if d.spec is not None and is_valid(d.spec)]
        elites = [d for d in context.elites if d.spec is not None and is_valid(d.spec) and not d.racing]
        proposal = None
        for _ in range(self.max_tries if pool else 0):
            if len(pool) > 1 and self.rng.random() < self.crossover:
                proposal = self._crossover(pool, elites, stats)
            else:
                proposal = self._mutation(pool, elites, stats)
            if proposal is not None and novelty.is_new(proposal.spec):
                return self._remember(proposal)
        for _ in range(self.max_tries):
            point = random_point(self.rng)
            if novelty.is_new(point):
                why = ("no recorded design has a design-space point yet" if not pool
                       else "no mutation or crossover of the recorded designs gave a new point")
                return self._remember(Proposal(point_name(point), f"A random valid point: {why}.",
                                               "random point of the design space", (), point))
        # Everything tried is known; dedup records the repeat at no evaluation cost.
        fallback = Proposal(point_name(point), "A random valid point; every point tried was in memory.",
                            "random point", (), point)
        return self._remember(proposal or fallback)

    def _remember(self, proposal: Proposal) -> Proposal:
        self.proposed.add(render_point(proposal.spec))
        return proposal

    def _pick_parent(self, pool: list[DesignSummary], elites: list[DesignSummary],
                     exclude: int | None = None) -> DesignSummary:
        candidates = [d for d in pool if d.id != exclude]
        ranked = (d for d in candidates if d.score is not None and not d.racing)
        scored = sorted(ranked, key=lambda d: (-d.score, d.id))
        if scored and self.rng.random() >= self.explore:
            niches = [d for d in elites if d.id != exclude]
            if niches and self.rng.random() < self.niche:
                return self.rng.choice(niches)
            weights = [1.0 / (rank + 1) for rank in range(len(scored))]  # rank-based: the best most often
            return self.rng.choices(scored, weights)[0]
        healthy = [d for d in candidates if d.status in ("ok", "unevaluated")] or candidates
        return self.rng.choice(healthy)

    def _pick_change(self, point: dict, stats: ValueStats, frozen: set[str]) -> tuple[str, object] | None:
        """A (choice, new value) for ``point``: by UCB gain over the current value, or at random."""
        options = [(c, v) for c in applicable(point) if c not in frozen
                   for v in CHOICE_BY_NAME[c].values if v != point[c]]
        if not options:
            return None
        if self.rng.random() < self.explore:
            return self.rng.choice(options)
        gains = [stats.ucb(c, v) - stats.mean(c, point[c]) for c, v in options]
        top = max(gains)
        weights = [math.exp((g - top) / 0.05) for g in gains]  # sharp softmax: mostly the largest gain
        return self.rng.choices(options, weights)[0]

    def _fill_new_choices(self, child: dict, before: Mapping, stats: ValueStats) -> None:
        """Choices that became relevant (beta after a switch to a delta rule) take their best UCB value."""
        for name in relevant(child):
            if name not in before:
                values = list(CHOICE_BY_NAME[name].values)
                best = max(stats.ucb(name, v) for v in values)
                child[name] = self.rng.choice([v for v in values if stats.ucb(name, v) >= best - 1e-12])

    def _mutation(self, pool: list[DesignSummary], elites: list[DesignSummary], stats: ValueStats) -> Proposal | None:
        parent = self._pick_parent(pool, elites)
        before = canonical(parent.spec)
        child = complete(before)
        changes: dict[str, tuple] = {}
        for _ in range(1 if self.rng.random() < 0.7 else 2):
            change = self._pick_change(child, stats, frozen=set(changes))
            if change is None:
                break
            choice, value = change
            changes[choice] = (child[choice], value)
            child[choice] = value
        self._fill_new_choices(child, before, stats)
        child = repair(child)
        # A late choice changed back to its default leaves the canonical point; it still holds that value.
        kept = {**{c: v for c, v in LATE_CHOICES.items() if c in applicable(child)}, **child}
        if not changes or not is_valid(child) or any(kept.get(c) != new for c, (_, new) in changes.items()):
            return None
        changed = diff(before, child)
        # Choices that appear or vanish with a new update rule do not count; repairs do, and so does a late choice
        # that still applies (it appears or vanishes because it was chosen).
        late = [c for c in LATE_CHOICES if c in changed and c in applicable(child)]
        if not changed or sum(old is not None and new is not None for old, new in changed.values()) + len(late) > 2:
            return None
        plan = f"mutation of #{parent.id} {parent.name}: " + ", ".join(
            f"{c} {old} -> {new}" for c, (old, new) in changed.items())
        evidence = "; ".join(stats.evidence(c, kept[c], old) for c, (old, _) in changes.items())
        motivation = (f"Mutate #{parent.id} {parent.name} (score {_fmt(parent.score)}): "
                      + ", ".join(f"{c} {old} -> {new}" for c, (old, new) in changed.items())
                      + f". Evidence: {evidence}.")
        return Proposal(point_name(child), motivation, plan, (parent.id,), child)

    def _crossover(self, pool: list[DesignSummary], elites: list[DesignSummary],
                   stats: ValueStats) -> Proposal | None:
        first = self._pick_parent(pool, elites)
        baselines = [d for d in pool if d.origin == "baseline" and d.id != first.id]
        if baselines and self.rng.random() < 0.5:
            second = self.rng.choice(baselines)
        else:
            second = self._pick_parent(pool, elites, exclude=first.id)
        a = complete(first.spec)
        b = complete(second.spec, fill=a)
        child = {}
        for name, value in a.items():
            if b[name] == value:
                child[name] = value
                continue
            # The value with the better bound, unless exploring.
            better = b[name] if stats.ucb(name, b[name]) > stats.ucb(name, value) else value
            other = value if better == b[name] else b[name]
            child[name] = other if self.rng.random() < self.explore else better
        child = repair(child)
        if not is_valid(child) or _key(child) in (_key(first.spec), _key(second.spec)):
            return None
        second_point = canonical(second.spec)
        from_second = [c for c, (_, new) in diff(first.spec, child).items()
                       if c in child and new == second_point.get(c)]
        if not from_second:
            return None
        evidence = "; ".join(stats.evidence(c, child[c], canonical(first.spec).get(c)) for c in from_second)
        plan = (f"crossover of #{first.id} {first.name} and #{second.id} {second.name}: "
                f"{', '.join(from_second)} from #{second.id}, the rest from #{first.id}")
        motivation = (f"Cross #{first.id} {first.name} (score {_fmt(first.score)}) with #{second.id} "
                      f"{second.name} (score {_fmt(second.score)}), taking "
                      + ", ".join(f"{c}={child[c]}" for c in from_second)
                      + f" from the latter. Evidence: {evidence}.")
        return Proposal(point_name(child), motivation, plan, (first.id, second.id), child)


class RandomResearcher:
    """Uniformly random valid points, skipping those in memory: the baseline the search must beat."""

    def __init__(self, seed: int = 0, max_tries: int = 200):
        self.rng = random.Random(seed)
        self.max_tries = max_tries
        self.proposed: set[str] = set()

    def propose(self, context: Context) -> Proposal:
        novelty = _Novelty(context, self.proposed)
        for _ in range(self.max_tries):
            point = random_point(self.rng)
            if novelty.is_new(point):
                break
        self.proposed.add(render_point(point))
        motivation = "A uniformly random valid point of the design space (random search)."
        return Proposal(point_name(point), motivation, "random point of the design space", (), point)
