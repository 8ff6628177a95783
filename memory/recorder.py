"""The recording service: every write that turns work into records goes through one ``Recorder``.

The loop, seeding, import, replay and verify all record the same things the same way: a design
(deduplicated, recorded, committed to the archive with its parents as git parents), an evaluation
begun before it runs and finished with its gate, status and score, evaluations abandoned when the
process that began them stops, designs a kill left unevaluated, and scores recomputed when the
references move. The recorder is quiet: it returns what happened and the caller tells the user.

Finishing applies the same rules to every purpose: a design's result passes the LM gate against
the references first (a failed gate is a named status, never a low score); a baseline is a
reference, so it is never gated. An ok result is scored against the references at its tier and
version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import evaluator
from evaluator.run import EvalResult, describe_safely
from evaluator.score import gate, score
from memory.baselines import BASELINES
from memory.db import INTERRUPTED, RUNNING
from memory.protocols import Records
from memory.records import Design

if TYPE_CHECKING:
    from memory.archive import DesignArchive

BASELINE = "baseline"


@dataclass(frozen=True)
class Recorded:
    """Where a design stands after ``Recorder.design``: a new record, or the one it duplicates."""

    design_id: int  # the new design, or for a duplicate the recorded design it repeats
    duplicate: str | None = None  # "exact" | "structural" when it repeats a recorded design
    original: Design | None = None  # the repeated design, for a duplicate
    resumed: bool = False  # recorded before, by a process stopped before its evaluation ended

    @property
    def is_duplicate(self) -> bool:
        return self.duplicate is not None


@dataclass(frozen=True)
class Finished:
    """A finished evaluation as recorded: the status after the gate, its reason, and the score."""

    eval_id: int
    design_id: int
    status: str
    reason: str
    score: float | None
    result: EvalResult  # what the evaluator returned, before the gate


class Recorder:
    """Records designs and evaluations in ``records`` and designs' code in ``archive``.

    ``heldout_key``: the workspace's secret for held-out draws, which every evaluation it starts passes
    on (None: each evaluation draws its own)."""

    def __init__(self, records: Records, archive: DesignArchive, heldout_key: bytes | None = None):
        self.records, self.archive = records, archive
        self.heldout_key = heldout_key
        self._in_flight: set[int] = set()  # designs whose evaluation this process began and has not finished

    def design(self, code: str, *, name: str, motivation: str, origin: str, parents: Sequence[int] = (),
               spec: dict | None = None, run_id: int | None = None) -> Recorded:
        """Record a proposed design, or say which recorded design it duplicates (recorded as a duplicate,
        costing no evaluation). A design recorded earlier in the same run (or, with ``run_id`` None, by an
        earlier import) that a stopped process never finished evaluating is returned as if new."""
        found = self.records.find_duplicate(code)
        if found is not None:
            kind, original = found
            if original.origin == origin and self.awaits_evaluation(original, run_id):
                return Recorded(original.id, resumed=True)
            return self.duplicate(code, kind, original, name=name, origin=origin, run_id=run_id)
        design_id = self.records.add_design(name, motivation, code, origin=origin, parents=parents, spec=spec,
                                            run_id=run_id)
        self._commit(design_id, name, code, parents, f"{name}\n\n{motivation}")
        return Recorded(design_id)

    def duplicate(self, code: str, kind: str, original: Design, *, name: str, origin: str,
                  run_id: int | None = None) -> Recorded:
        """Record ``code`` as a ``kind`` duplicate of ``original`` (it costs no evaluation)."""
        self.records.add_duplicate(run_id, code, kind, original.id, name, origin)
        return Recorded(original.id, kind, original)

    def baseline(self, name: str, spec: dict | None = None) -> int:
        """The design id of baseline ``name``, recording it (and its archive commit) the first time."""
        code = BASELINES[name].read_text(encoding="utf-8")
        found = self.records.find_duplicate(code)
        if found is not None and found[0] == "exact":
            design_id = found[1].id
        else:
            motivation = describe_safely(code)[1] or ""
            design_id = self.records.add_design(name, motivation, code, origin=BASELINE, spec=spec)
        if self.records.design(design_id).archive_commit is None:
            self._commit(design_id, name, code, (), f"baseline {name}")
        return design_id

    def _commit(self, design_id: int, name: str, code: str, parents: Sequence[int], message: str) -> None:
        parent_commits = [self.records.design(p).archive_commit for p in parents]
        sha = self.archive.commit(design_id, name, code, [c for c in parent_commits if c], message)
        self.records.set_archive_commit(design_id, sha)

    def awaits_evaluation(self, design: Design, run_id: int | None) -> bool:
        """Whether ``design`` was recorded in this run (None: outside any run) and still has no finished
        search evaluation, and none in flight in this process: a kill came between recording and result."""
        if design.run_id != run_id or design.origin == BASELINE or design.id in self._in_flight:
            return False
        return not any(e.purpose == "search" and e.status not in (RUNNING, INTERRUPTED)
                       for e in self.records.evaluations(design.id))

    def awaiting(self, run_id: int) -> list[Design]:
        """The run's designs that a kill left without a finished search evaluation, oldest first."""
        return [d for d in self.records.designs() if d.run_id == run_id and self.awaits_evaluation(d, run_id)]

    def begin(self, design_id: int, tier: evaluator.Tier, seed: int, *, purpose: str,
              run_id: int | None = None) -> int:
        """Record an evaluation as in flight before it starts; returns its id."""
        eval_id = self.records.begin_evaluation(design_id, run_id, purpose, tier.name, tier.version, seed)
        self._in_flight.add(design_id)
        return eval_id

    def finish(self, eval_id: int, result: EvalResult) -> Finished:
        """Close a running evaluation: gate (designs only), status and score against the references."""
        evaluation = self.records.evaluation(eval_id)
        design = self.records.design(evaluation.design_id)
        references = self.records.references(evaluation.tier, evaluation.tier_version)
        status, reason = result.status, result.reason
        if status == "ok" and design.origin != BASELINE and (gated := gate(result.metrics, references)):
            status, reason = gated
        tier = evaluator.get_tier(evaluation.tier)
        value = score(result.metrics, tier, references) if status == "ok" else None
        self.records.finish_evaluation(eval_id, status=status, reason=reason, metrics=result.metrics, score=value,
                                       log=result.log, duration_s=result.duration_s, environment=result.environment)
        self._in_flight.discard(design.id)
        return Finished(eval_id, design.id, status, reason, value, result)

    def abandon(self, eval_ids: Iterable[int], reason: str = "the process stopped before the evaluation ended") -> None:
        """Mark evaluations this process began and will not finish as interrupted. Evaluations of a run are
        also released in bulk when it resumes (``abandon_run``); this reaches those that belong to none."""
        for eval_id in eval_ids:
            evaluation = self.records.evaluation(eval_id)
            if evaluation.status == RUNNING:
                self.records.finish_evaluation(eval_id, INTERRUPTED, reason=reason)
            self._in_flight.discard(evaluation.design_id)

    def abandon_run(self, run_id: int) -> int:
        """Mark the run's evaluations still running (their process died) interrupted; returns how many."""
        self._in_flight.clear()
        return self.records.abandon_inflight(run_id)

    def rescore(self, tier: str) -> int:
        """Recompute the score of every ok evaluation at the tier's current version (scores are relative to
        the references, so they move when references land); returns how many."""
        spec = evaluator.get_tier(tier)
        references = self.records.references(spec.name, spec.version)
        evaluations = self.records.evaluations_at(spec.name, spec.version, status="ok")
        self.records.set_scores({e.id: score(e.metrics or {}, spec, references) for e in evaluations})
        return len(evaluations)
