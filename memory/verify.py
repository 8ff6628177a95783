"""Verifying the best designs: several seeds each, beside references, and a verdict that holds at a stated confidence.

A search keeps the design whose one evaluation scored highest, and with one seed per design the best
of many is partly luck. ``verify`` evaluates the top K designs and a few references at seeds
0..S-1 (reusing every evaluation already recorded at the tier, version and seed, and recording the
new ones with purpose "verify", outside any run's budget), then compares each design with each
reference of its cost class or a cheaper one (``evaluator.cost``: a constant-state design is not judged
against attention), on the score and on each scored metric. By default the references are, for each
design's class, the best reference of that class or a cheaper one, and linear attention; references
named by the caller are each compared with every design.

The comparison is Welch's two-sided interval for mean(design) - mean(reference) at the confidence
asked for (95% by default), using Student's t with the Welch–Satterthwaite degrees of freedom: with
three seeds a side that is about 4.3 standard errors, not 1.96. The verdict is "better" when the
whole interval lies on the good side of zero, "worse" when it lies on the bad side, and
"not-distinguishable" otherwise; "insufficient" when a side has fewer than two ok seeds. A design
that failed at any seed is never called better: the failure is part of its record. Every verdict is
stored (the provenance store's ``add_verification``), so ``top``, ``show`` and the UI can show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from statistics import mean, stdev

import evaluator
from evaluator import cost
from evaluator.metrics import GATE
from evaluator.metrics import metric as registered
from evaluator.run import EvalResult, in_turn, submit
from evaluator.stats import welch_interval
from memory.archive import DesignArchive
from memory.baselines import BASELINE_POINTS, BASELINES
from memory.db import ExperienceDB
from memory.protocols import Records
from memory.recorder import Recorder
from memory.records import Design, Evaluation
from memory.references import RETRYABLE

METHOD = "welch-t two-sided"
ABANDONED = "the verifying process stopped first"
DEFAULT_REFERENCE = "linear_attention"  # the simplest sub-quadratic reference: beating it is the least a design must do


class VerifyError(ValueError):
    """Nothing to verify, or an unknown reference."""


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float | None
    std: float | None
    values: tuple[float, ...]


@dataclass(frozen=True)
class Entry:
    """One design or reference: its evaluation per seed, its failed seeds, and per-metric statistics."""

    design_id: int
    name: str
    origin: str
    is_reference: bool
    evaluations: dict[int, int]  # seed -> evaluation id
    failures: dict[int, str]  # seed -> status
    stats: dict[str, Stats]
    cost_class: str = "unproven"  # of its first ok evaluation (``evaluator.cost``)


@dataclass(frozen=True)
class Comparison:
    design_id: int
    name: str
    reference: str
    reference_id: int
    metric: str
    higher_is_better: bool
    n: int
    mean: float | None
    std: float | None
    reference_n: int
    reference_mean: float | None
    reference_std: float | None
    diff: float | None
    low: float | None
    high: float | None
    verdict: str

    def row(self) -> dict:
        """The ``verdicts`` table's columns."""
        data = asdict(self)
        del data["name"]
        return data


@dataclass(frozen=True)
class VerifyReport:
    verification_id: int
    tier: str
    tier_version: int
    seeds: tuple[int, ...]
    confidence: float
    method: str
    metrics: tuple[str, ...]
    entries: tuple[Entry, ...]
    comparisons: tuple[Comparison, ...]
    evaluated: int  # new evaluations run now
    reused: int  # evaluations found already recorded
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return asdict(self)


def top_designs(records: Records, tier: evaluator.Tier, k: int) -> list[Design]:
    """The k best non-baseline designs at the tier's current version by their mean over seeds, as ``top`` ranks
    them (baselines are the references)."""
    rows = k + len(records.designs("baseline"))  # enough to fill k after the baselines among them are skipped
    return [r.design for r in records.ranked(tier.name, rows, tier.version) if r.design.origin != "baseline"][:k]


def _ok_at(records: Records, design: Design, tier: evaluator.Tier) -> list[Evaluation]:
    return [e for e in records.evaluations(design.id)
            if (e.tier, e.tier_version) == (tier.name, tier.version) and e.status == "ok" and e.score is not None]


def default_references(records: Records, tier: evaluator.Tier, designs: Iterable[Design] = ()) -> list[str]:
    """For the cost class of each design, the best reference of that class or a cheaper one (highest mean
    quality, ``evaluator.score.quality``, so references of different classes compare on one scale), then
    linear attention. Without designs: the best reference of all."""
    from evaluator.score import quality

    means, classes = {}, {}
    for design in records.designs("baseline"):
        ok = _ok_at(records, design, tier)
        values = [q for e in ok if (q := quality(e.metrics or {}, tier)) is not None]
        if values and design.name in BASELINES:
            means[design.name], classes[design.name] = mean(values), {"cost_class": cost.of(ok[0].metrics or {})}
    wanted = {cost_class_of(records, d, tier) for d in designs} or {"unproven"}
    best = [max(pool, key=lambda name: (means[name], name))
            for c in sorted(wanted, key=lambda c: cost.RANK[c]) if (pool := cost.eligible(c, classes))]
    return list(dict.fromkeys([*best, DEFAULT_REFERENCE]))


def cost_class_of(records: Records, design: Design, tier: evaluator.Tier) -> str:
    """The cost class of the design's first ok evaluation at the tier's version, else ``unproven``."""
    ok = _ok_at(records, design, tier)
    return cost.of(ok[0].metrics or {}) if ok else "unproven"


def judged_against(design: Entry, references: list[Entry]) -> list[Entry]:
    """The references a design is judged against: those of its cost class or a cheaper one (all of them
    when none is), as its score is."""
    eligible = set(cost.eligible(design.cost_class, {r.name: {"cost_class": r.cost_class} for r in references}))
    return [r for r in references if r.name in eligible]


def seed_evaluation(evaluations: Iterable[Evaluation], tier: evaluator.Tier, seed: int) -> Evaluation | None:
    """The recorded evaluation that stands for this (tier, version, seed): the first final one, replays
    last (a replay repeats a record rather than adding one). Outcomes that say more about the machine
    than the design (timeouts, crashes, ...) do not count."""
    final = [e for e in evaluations if (e.tier, e.tier_version, e.seed) == (tier.name, tier.version, seed)
             and e.status not in RETRYABLE]
    final.sort(key=lambda e: (e.purpose == "replay", e.id))
    return final[0] if final else None


def verify(db: ExperienceDB, archive: DesignArchive, executor, tier: str, *, top: int = 3, seeds: int = 3,
           references: Iterable[str] | None = None, design_ids: Iterable[int] | None = None,
           confidence: float = 0.95, on_planned: Callable[[int], None] | None = None,
           on_done: Callable[[str, int, str], None] | None = None) -> VerifyReport:
    """Evaluate the designs (``design_ids``, else the ``top`` best) and references at seeds 0..seeds-1,
    compare, record the verdicts and return the report. ``on_planned(n)`` says how many evaluations
    will run; ``on_done(name, seed, status)`` follows each."""
    spec = evaluator.get_tier(tier)
    records, recorder = db.records, Recorder(db.records, archive, db.heldout_key)
    if seeds < 2:
        raise VerifyError(f"verification needs at least 2 seeds to measure a spread; got {seeds}")
    if not 0 < confidence < 1:
        raise VerifyError(f"confidence must be in (0, 1); got {confidence}")
    designs = [records.design(i) for i in design_ids] if design_ids is not None else top_designs(records, spec, top)
    if not designs:
        raise VerifyError(f"no scored design at tier {spec.key} to verify; run `discover run --tier {tier}` first")
    names = list(dict.fromkeys(references or default_references(records, spec, designs)))
    if unknown := sorted(set(names) - set(BASELINES)):
        raise VerifyError(f"unknown reference(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    reference_designs = [records.design(recorder.baseline(name, BASELINE_POINTS.get(name))) for name in names]
    participants = [(d, False) for d in designs] + [(d, True) for d in reference_designs]
    seed_list = tuple(range(seeds))
    # References go first: a design's result is recorded only once every reference's is (see run_missing).
    evaluated, reused = run_missing(recorder, executor, spec, reference_designs + designs, seed_list, on_planned,
                                    on_done)
    entries = [entry(records, design, is_reference, spec, seed_list) for design, is_reference in participants]
    metrics = ("score", *spec.score_weights, *(m for m in GATE if any(m in e.stats for e in entries)))
    chosen = [e for e in entries if e.is_reference]
    comparisons = [compare(d, r, metric, confidence) for d in entries if not d.is_reference
                   for r in (chosen if references else judged_against(d, chosen)) for metric in metrics]
    verification_id = db.provenance.add_verification(spec.name, spec.version, seed_list, confidence, METHOD,
                                                     [c.row() for c in comparisons])
    notes = tuple(f"{e.name} failed at seed(s) {', '.join(map(str, e.failures))}: "
                  f"{', '.join(sorted(set(e.failures.values())))}" for e in entries if e.failures)
    return VerifyReport(verification_id, spec.name, spec.version, seed_list, confidence, METHOD, metrics,
                        tuple(entries), tuple(comparisons), evaluated, reused, notes)


def run_missing(recorder: Recorder, executor, tier: evaluator.Tier, designs: list[Design], seeds: tuple[int, ...],
                on_planned=None, on_done=None) -> tuple[int, int]:
    """Evaluate every (design, seed) without a recorded evaluation, in parallel; (evaluated, reused).

    Results are recorded from this thread (the database connection is not shared with the executor's
    threads), references first: a design's result waits until no reference is in flight, so its LM
    gate sees every reference, as in the loop, which seeds references before it searches. Scores are
    recomputed at the end, since new reference seeds move the yardstick."""
    missing = sorted(((d, s) for d in designs for s in seeds
                      if seed_evaluation(recorder.records.evaluations(d.id), tier, s) is None),
                     key=lambda m: m[0].origin != "baseline")  # references first
    if on_planned:
        on_planned(len(missing))
    references_left = sum(d.origin == "baseline" for d, _ in missing)
    begun: dict[tuple[int, int], int] = {}  # (design id, seed) -> evaluation id, while in flight
    held: list[tuple[Design, int, EvalResult]] = []

    def start(item: tuple[Design, int]) -> Future:
        design, seed = item
        begun[design.id, seed] = recorder.begin(design.id, tier, seed, purpose="verify")
        return submit(executor, design.code, tier.name, seed, recorder.heldout_key)

    try:
        for (design, seed), future in in_turn(executor, missing, start):
            held.append((design, begun.pop((design.id, seed)), future.result()))
            references_left -= design.origin == "baseline"
            if on_done:
                on_done(design.name, seed, held[-1][2].status)
            for item in sorted(held, key=lambda h: h[0].origin != "baseline"):
                if item[0].origin == "baseline" or not references_left:
                    recorder.finish(item[1], item[2])
                    held.remove(item)
    finally:
        recorder.abandon(list(begun.values()) + [eval_id for _, eval_id, _ in held], reason=ABANDONED)
    if missing:
        recorder.rescore(tier.name)
    return len(missing), len(designs) * len(seeds) - len(missing)


def entry(records: Records, design: Design, is_reference: bool, tier: evaluator.Tier, seeds: tuple[int, ...]) -> Entry:
    chosen = {s: e for s in seeds if (e := seed_evaluation(records.evaluations(design.id), tier, s)) is not None}
    ok = [e for e in chosen.values() if e.status == "ok"]
    values: dict[str, list[float]] = {"score": [e.score for e in ok if e.score is not None]}
    for e in ok:
        for metric, value in (e.metrics or {}).items():
            if metric in tier.score_weights or metric in GATE:
                values.setdefault(metric, []).append(value)
    stats = {m: Stats(len(v), mean(v) if v else None, stdev(v) if len(v) > 1 else None, tuple(v))
             for m, v in values.items()}
    return Entry(design.id, design.name, design.origin, is_reference, {s: e.id for s, e in chosen.items()},
                 {s: e.status for s, e in chosen.items() if e.status != "ok"}, stats,
                 cost.of(ok[0].metrics or {}) if ok else "unproven")


def compare(design: Entry, reference: Entry, metric: str, confidence: float) -> Comparison:
    higher = metric == "score" or registered(metric).higher_is_better
    empty = Stats(0, None, None, ())
    x, y = design.stats.get(metric, empty), reference.stats.get(metric, empty)
    diff = low = high = None
    verdict = "insufficient"
    if x.n >= 2 and y.n >= 2:
        interval = welch_interval(list(x.values), list(y.values), confidence)
        diff, low, high = interval.diff, interval.low, interval.high
        good, bad = (low > 0, high < 0) if higher else (high < 0, low > 0)
        verdict = "better" if good and not design.failures else "worse" if bad else "not-distinguishable"
    return Comparison(design.design_id, design.name, reference.name, reference.design_id, metric, higher,
                      x.n, x.mean, x.std, y.n, y.mean, y.std, diff, low, high, verdict)
