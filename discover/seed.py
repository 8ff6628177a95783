"""Seeding references: evaluate the baseline designs at a tier so scores have a yardstick.

``ensure_references`` evaluates every (baseline, seed) pair that has no finished evaluation at
the tier's current version, in parallel on the executor, recording each as it finishes; then it
rescores every ok evaluation at that tier, because scores are relative to the references.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, as_completed
from dataclasses import dataclass

import evaluator
from evaluator.run import describe_safely, submit
from evaluator.score import score
from memory import DesignArchive, ExperienceDB
from memory.baselines import BASELINES


@dataclass(frozen=True)
class SeedOutcome:
    name: str
    design_id: int
    evaluation_id: int
    seed: int
    result: evaluator.EvalResult


def baseline_design(db: ExperienceDB, archive: DesignArchive, name: str, spec: dict | None = None) -> int:
    """The design id of baseline ``name``, recording it (and its archive commit) the first time."""
    code = BASELINES[name].read_text(encoding="utf-8")
    found = db.find_duplicate(code)
    if found is not None and found[0] == "exact":
        design_id = found[1].id
    else:
        design_id = db.add_design(name, describe_safely(code)[1] or "", code, origin="baseline", spec=spec)
    if db.design(design_id).archive_commit is None:
        db.set_archive_commit(design_id, archive.commit(design_id, name, code, [], f"baseline {name}"))
    return design_id


# Outcomes that say more about the machine than the design: such a reference is evaluated again.
RETRYABLE = frozenset({"running", "interrupted", "crash", "harness", "timeout", "oom"})


def finished_references(db: ExperienceDB, tier: str, version: int) -> set[tuple[str, int]]:
    """(baseline name, seed) pairs with a final evaluation at this tier and version."""
    done = set()
    for design in db.designs("baseline"):
        for evaluation in db.evaluations(design.id):
            if (evaluation.tier, evaluation.tier_version) == (tier, version) and evaluation.status not in RETRYABLE:
                done.add((design.name, evaluation.seed))
    return done


def ensure_references(db: ExperienceDB, archive: DesignArchive, executor, tier: str, seeds: Iterable[int] = (0,),
                      names: Iterable[str] | None = None, run_id: int | None = None, specs: dict | None = None,
                      on_done: Callable[[SeedOutcome], None] | None = None) -> list[SeedOutcome]:
    names = list(names or BASELINES)
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise KeyError(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    version = evaluator.get_tier(tier).version
    done = finished_references(db, tier, version)
    pending: dict[Future, tuple[str, int, int, int]] = {}
    for name in names:
        for seed in seeds:
            if (name, seed) in done:
                continue
            design_id = baseline_design(db, archive, name, (specs or {}).get(name))
            eval_id = db.begin_evaluation(design_id, run_id, "seed", tier, version, seed)
            future = submit(executor, BASELINES[name].read_text(encoding="utf-8"), tier, seed)
            pending[future] = (name, seed, design_id, eval_id)
    outcomes = []
    for future in as_completed(pending):
        name, seed, design_id, eval_id = pending[future]
        result = future.result()
        db.finish_evaluation(eval_id, status=result.status, reason=result.reason, metrics=result.metrics,
                             log=result.log, duration_s=result.duration_s, environment=result.environment)
        outcome = SeedOutcome(name, design_id, eval_id, seed, result)
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    if pending:
        rescore(db, tier)
    return outcomes


def rescore(db: ExperienceDB, tier: str) -> int:
    """Recompute the score of every ok evaluation at the tier's current version; returns how many."""
    spec = evaluator.get_tier(tier)
    references = db.references(spec.name, spec.version)
    evaluations = db.evaluations_at(spec.name, spec.version, status="ok")
    db.set_scores({e.id: score(e.metrics or {}, spec, references) for e in evaluations})
    return len(evaluations)
