"""Twins: different design files that train exactly alike.

Dedup (``memory.dedup``) compares code. Two files can differ and still compute the same function at
the tier's shapes: a design-space point that renders the same layer as another at the tier's widths
(a key width of 16 and of half the head, at a head of 32), a reference rewritten with other names and
a dead branch, an operation that changes no bit (``x * 1.0``). Trained from the same seed, such a pair
agrees to the last recorded digit on everything training produced. Two designs are twins when, at a
seed both were evaluated at (an ok evaluation, not a replay, at one tier and version), they agree on

- every training result recorded, the metrics of kinds accuracy and loss (``evaluator.metrics``), of
  which there must be at least one of each: equal values, equal names;
- the cost the front is drawn over: the cost class and the state's memory at 16k tokens.

A twin is no new trade-off and no evidence of its own: the leaderboard, the quality-cost front, the
verification queue, racing and the agents' top and elites keep one design of each group, its
*original* (a reference when the group holds one, else the oldest design), and say which designs they
left out as its twins. Twins are derived from the records whenever asked, so nothing is stored and a
database written before this rule existed is read by it.

Exact agreement with what was recorded is the test (the tasks record their results to four
decimals, over several tasks): a copy changed enough to move any recorded digit counts as a design of
its own, judged like any other by its seeds and intervals. Designs that differ only where the tier
never looks (a branch taken past the training lengths) are twins at that tier, which is what the
tier can tell. Throughput is not compared: it is the machine's noise, and bit-for-bit the same
computation costs the same. A design gains nothing by forging the results its own process reports
(the final losses) to match another's: the older design of a group stands for it, so a forger can
only hide itself.

This module imports nothing heavy: the command line and the terminal UI use it before torch loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

from evaluator import cost
from evaluator.metrics import metric

TRAINED = ("accuracy", "loss")  # the metric kinds that training produces and a seed reproduces exactly


def signature(seed: int, metrics: Mapping) -> tuple | None:
    """What an evaluation's training produced and what it costs on the front, exactly as recorded; None when
    it holds no accuracy or no loss (too little to tell two designs apart)."""
    trained = sorted((name, value) for name, value in metrics.items()
                     if metric(name).kind in TRAINED and isinstance(value, Real) and not isinstance(value, bool))
    kinds = {metric(name).kind for name, _ in trained}
    if kinds != set(TRAINED):
        return None
    return seed, cost.of(metrics), metrics.get("state_mb_16k"), tuple(trained)


class Twins:
    """Designs grouped by the signatures of their evaluations, one evaluation at a time (in any order).

    A design that shares a signature with another joins its group, and groups that come to share a
    design merge. Each group's original is a reference when it holds one, else its lowest design id.
    """

    def __init__(self) -> None:
        self._up: dict[int, int] = {}  # design -> a design of its group nearer the original (union-find)
        self._reference: set[int] = set()
        self._holder: dict[tuple, int] = {}  # signature -> the first design seen with it

    def add(self, design_id: int, seed: int, metrics: Mapping | None, reference: bool = False) -> None:
        """See one ok evaluation of ``design_id`` (a reference's when ``reference``)."""
        self._up.setdefault(design_id, design_id)
        if reference:
            self._reference.add(design_id)
        found = signature(seed, metrics or {})
        if found is None:
            return
        holder = self._holder.setdefault(found, design_id)
        if holder != design_id:
            self._join(holder, design_id)

    def original(self, design_id: int) -> int:
        """The design that stands for ``design_id``'s group (itself when it has no twin)."""
        root = design_id
        while self._up.get(root, root) != root:
            root = self._up[root]
        while self._up.get(design_id, design_id) != root:  # shorten the path for the next reader
            self._up[design_id], design_id = root, self._up[design_id]
        return root

    def of(self) -> dict[int, int]:
        """{twin: its original} for every design that is not the original of its group."""
        return {d: root for d in self._up if (root := self.original(d)) != d}

    def _join(self, a: int, b: int) -> None:
        a, b = self.original(a), self.original(b)
        if a == b:
            return
        keep, drop = sorted((a, b), key=lambda d: (d not in self._reference, d))
        self._up[drop] = keep

