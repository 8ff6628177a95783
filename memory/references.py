"""Seeding references: evaluate the baseline designs at a tier so scores have a yardstick.

``ensure_references`` evaluates every (baseline, seed) pair that has no final evaluation at the
tier's current version, in parallel on the executor, recording each as it finishes; then it
rescores every ok evaluation at that tier, because scores are relative to the references.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

import evaluator
from evaluator.run import EvalResult, in_turn, submit
from memory.baselines import BASELINE_POINTS, BASELINES
from memory.protocols import Records
from memory.recorder import Recorder

# Outcomes that say more about the machine than the design: such a reference is evaluated again.
RETRYABLE = frozenset({"running", "interrupted", "crash", "harness", "timeout", "oom"})


@dataclass(frozen=True)
class SeedOutcome:
    name: str
    design_id: int
    evaluation_id: int
    seed: int
    result: EvalResult


def finished_references(records: Records, tier: str, version: int) -> set[tuple[str, int]]:
    """(baseline name, seed) pairs with a final evaluation at this tier and version."""
    done = set()
    for design in records.designs("baseline"):
        for evaluation in records.evaluations(design.id):
            if (evaluation.tier, evaluation.tier_version) == (tier, version) and evaluation.status not in RETRYABLE:
                done.add((design.name, evaluation.seed))
    return done


def ensure_references(recorder: Recorder, executor, tier: str, seeds: Iterable[int] = (0,),
                      names: Iterable[str] | None = None, run_id: int | None = None,
                      on_planned: Callable[[int], None] | None = None,
                      on_done: Callable[[SeedOutcome], None] | None = None) -> list[SeedOutcome]:
    """Evaluate the baselines ``names`` (default: all) at ``seeds`` where no final evaluation exists.
    ``on_planned(n)`` says how many evaluations that is, before the first ends; ``on_done`` follows each."""
    names = list(names or BASELINES)
    if unknown := sorted(set(names) - set(BASELINES)):
        raise KeyError(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    spec = evaluator.get_tier(tier)
    done = finished_references(recorder.records, spec.name, spec.version)
    planned = [(name, seed) for name in names for seed in seeds if (name, seed) not in done]
    begun: dict[tuple[str, int], tuple[int, int]] = {}  # (name, seed) -> (design_id, eval_id), while in flight

    def start(item: tuple[str, int]) -> Future:
        name, seed = item
        design_id = recorder.baseline(name, BASELINE_POINTS.get(name))
        begun[item] = design_id, recorder.begin(design_id, spec, seed, purpose="seed", run_id=run_id)
        return submit(executor, BASELINES[name].read_text(encoding="utf-8"), spec.name, seed, recorder.heldout_key)

    if on_planned:
        on_planned(len(planned))
    outcomes = []
    try:
        for (name, seed), future in in_turn(executor, planned, start):
            design_id, eval_id = begun.pop((name, seed))
            result = future.result()
            recorder.finish(eval_id, result)
            outcome = SeedOutcome(name, design_id, eval_id, seed, result)
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
    finally:
        if run_id is None:  # a run releases its own in bulk when it resumes
            recorder.abandon(eval_id for _, eval_id in begun.values())
    if outcomes:
        recorder.rescore(spec.name)
    return outcomes
