"""Racing: more seeds, inside a run's budget, for the designs that could reach the top.

One seed moves a design's score more than many design changes do, so a single lucky evaluation
must not make an elite or a parent. Every new design gets one seed. A design whose optimistic
bound, its mean score plus ``Z`` spreads of a mean over its seeds, reaches the ``TOP``-th best
mean on the leaderboard (references included) gets another seed, until it has ``SEEDS``; each
extra seed is an evaluation of the run and counts against its budget. The spread is the pooled
standard deviation across seeds of the designs that have several at this tier and version, or
``PRIOR_SPREAD`` until two designs do.

What to race is derived from the records alone (``wanted`` over ``Records.seed_scores``), so a run
killed mid-race resumes the race where it stood.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import mean, variance

from memory.records import Evaluation

SEEDS = 3
TOP = 5
Z = 1.0
PRIOR_SPREAD = 0.2  # in score units: DeltaNet's quick-tier MQAR moved 0.45 between two seeds


def spread(table: dict[int, dict[int, Evaluation]]) -> float:
    """The pooled standard deviation of a score across seeds, from designs with at least two."""
    pooled = [(len(by_seed) - 1, variance([e.score for e in by_seed.values()]))
              for by_seed in table.values() if len(by_seed) >= 2]
    if len(pooled) < 2:
        return PRIOR_SPREAD
    freedom = sum(df for df, _ in pooled)
    return math.sqrt(sum(df * v for df, v in pooled) / freedom)


def next_seed(taken: Iterable[int], first: int) -> int:
    """The smallest seed from ``first`` on that the design has not been evaluated at."""
    taken = set(taken)
    seed = first
    while seed in taken:
        seed += 1
    return seed


def run_designs(table: dict[int, dict[int, Evaluation]], run_id: int) -> list[int]:
    """The designs a run searched, from a ``Records.seed_scores`` table: candidates for its races."""
    return [design_id for design_id, by_seed in table.items()
            if any(e.run_id == run_id and e.purpose == "search" for e in by_seed.values())]


def wanted(table: dict[int, dict[int, Evaluation]], candidates: Iterable[int], first_seed: int,
           busy: Iterable[int] = (), seeds: int = SEEDS) -> list[tuple[int, int]]:
    """(design id, seed) for each candidate that deserves another seed now, best optimistic bound first, from
    ``table`` (``Records.seed_scores`` at the tier and version); ``busy``: designs with an evaluation in
    flight, which wait for it; ``seeds``: how many a race ends at."""
    means = {design_id: mean(e.score for e in by_seed.values()) for design_id, by_seed in table.items()}
    sigma = spread(table)
    busy = set(busy)
    out = []
    for design_id in dict.fromkeys(candidates):
        by_seed = table.get(design_id, {})
        if not by_seed or len(by_seed) >= seeds or design_id in busy:
            continue
        others = sorted((m for other, m in means.items() if other != design_id), reverse=True)
        bar = others[TOP - 1] if len(others) >= TOP else -math.inf
        bound = means[design_id] + Z * sigma / math.sqrt(len(by_seed))
        if bound >= bar:
            out.append((bound, design_id, next_seed(by_seed, first_seed)))
    return [(design_id, seed) for _, design_id, seed in sorted(out, key=lambda r: (-r[0], r[1]))]
