"""What a design costs at inference, as a class the score and the leaderboard respect.

A design's class comes from its recurrent state, measured from outside (``evaluator.measure.measure_state``):
the check model steps half the training sequence in one process, sends its state back, and a second
process continues from that state to the end, a third a few tokens further; their answers must equal
the forward pass over the whole sequence, so the states that crossed are the whole memory, whatever
the design says about itself. From their sizes, in numbers (not bytes, so a narrower dtype buys
nothing):

- ``quadratic``: the state grows from the middle of the training sequence to its end (attention's
  key-value cache, a window at least half the sequence long, a hybrid's attention layers), or it
  holds at least as many numbers as attention's keys and values over the whole training sequence (a
  window the length of the sequence, kept in a buffer allocated up front); at this length the design
  is attention, whatever it is at another.
- ``windowed``: bounded, but larger after the middle of the sequence than after its first token.
- ``constant``: the same size after the first token as at the end.
- ``unproven``: no recurrent form (``step``), so nothing bounds its state; ranked with ``quadratic``.

Known gap: a cache of the whole sequence compressed below attention's size (a key per token and no
value, say) and filled with non-zero padding from the start would pass for constant; the state's
size is in every row, where it shows.

The score compares a design with the best reference of its own class or a cheaper one (``eligible``),
so a constant-state design is measured against constant-state references, and softmax attention is
the ceiling that quadratic designs face. This module imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from evaluator.metrics import threshold

CLASSES = ("constant", "windowed", "quadratic", "unproven")
RANK = {"constant": 0, "windowed": 1, "quadratic": 2, "unproven": 2}
SHORT = {"constant": "const", "windowed": "window", "quadratic": "quad", "unproven": "unproven"}
GROWTH = threshold("state_growth")  # non-zero numbers of the state at the end over the middle, past which it grows
LONG_CONTEXT = 16384  # the length the state's memory is stated at


def classify(first: int, middle: int, end: int, nonzero_middle: int, nonzero_end: int,
             sequence_cache: int) -> tuple[str, str]:
    """(class, why) from the state's numbers after the first token (what the design's process said),
    at the middle and at the end of the training sequence (both checked by continuing from them in a
    new process), its non-zero numbers at those two points, and ``sequence_cache``: the numbers
    attention's keys and values take over the training sequence at the check model's shape."""
    if end > middle or nonzero_end > GROWTH * max(nonzero_middle, 1):
        return "quadratic", (f"its state grows from {middle} numbers at the middle of the training sequence "
                             f"to {end} at its end ({nonzero_middle} to {nonzero_end} non-zero)")
    if max(middle, end) >= sequence_cache:
        return "quadratic", (f"its state holds {max(middle, end)} numbers, at least attention's {sequence_cache} "
                             "keys and values over the training sequence")
    if first < middle:
        return "windowed", f"its state grows from {first} numbers after one token to {middle}, then stays"
    return "constant", f"its state holds {end} numbers from the first token to the last"


def state_bytes_at(length: int, train_len: int, middle_bytes: int, end_bytes: int, cost_class: str) -> float:
    """The state's bytes at ``length`` tokens: a bounded state as measured; a growing one extended along
    its growth, and one that holds the sequence, in proportion to the length."""
    if cost_class in ("constant", "windowed"):
        return float(end_bytes)
    half = train_len - train_len // 2
    per_token = (end_bytes - middle_bytes) / half if end_bytes > middle_bytes else end_bytes / train_len
    return end_bytes + per_token * (length - train_len)


def of(metrics: Mapping) -> str:
    """A result's class; a result measured before classes were (or without a recurrent form) is unproven."""
    found = metrics.get("cost_class")
    return found if found in RANK else "unproven"


def eligible(cost_class: str, references: Mapping[str, Mapping]) -> list[str]:
    """The references a design of ``cost_class`` is scored against: those of its class or a cheaper one,
    or all of them when none is (a run whose only reference is attention)."""
    rank = RANK.get(cost_class, RANK["unproven"])
    chosen = [name for name, row in references.items() if RANK[of(row)] <= rank]
    return chosen or list(references)


def front(points: Sequence[tuple[float | None, float | None]]) -> list[bool]:
    """Which (quality, cost) points are on the Pareto front: no other point is at least as good and at
    most as costly, and strictly one of them. A point without a quality is never on it; one without a
    cost counts as infinitely costly."""
    def cost(c):
        return math.inf if c is None else c

    marks = []
    for i, (quality, c) in enumerate(points):
        if quality is None:
            marks.append(False)
            continue
        dominated = any(q is not None and q >= quality and cost(d) <= cost(c) and (q > quality or cost(d) < cost(c))
                        for j, (q, d) in enumerate(points) if j != i)
        marks.append(not dominated)
    return marks


def describe(classes: Iterable[str]) -> str:
    """One line saying what the classes shown mean."""
    present = set(classes)
    shown = [c for c in CLASSES if c in present]
    meaning = {"constant": "fixed state", "windowed": "bounded window", "quadratic": "grows with the sequence",
               "unproven": "no recurrent form"}
    return "; ".join(f"{SHORT[c]}: {meaning[c]}" for c in shown)
