"""The discovery loop: propose, code, dedup, evaluate, analyse, record — until the budget is spent.

``run(config)`` is the whole algorithm; every step is a named call into its package. State lives
in the experience database, written one transaction per change, so a run killed at any moment
resumes (``resume=True``) without losing a finished evaluation or repeating one, and the budget
(evaluations; duplicates are free, failures count) is spent exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

import evaluator
import sandbox
from agents import Draft, Outcome, Proposal, Roles, make_roles
from agents.offline.space import BASELINE_POINTS
from discover.config import RunConfig
from discover.context import build_context
from discover.seed import ensure_references
from discover.workspace import Workspace
from evaluator.evaluate import EvalResult, submit
from evaluator.score import gate, score
from memory import DesignArchive, ExperienceDB

# Failures a coder can fix by rewriting the file; the rest are verdicts on the architecture.
FIXABLE = frozenset({"syntax", "unsafe", "contract", "build", "shape", "params", "error", "recurrent-mismatch"})
MAX_DUPLICATES_IN_A_ROW = 50


@dataclass(frozen=True)
class Flight:
    """An evaluation in progress."""

    eval_id: int
    design_id: int
    draft: Draft


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    status: str
    spent: int
    budget: int
    duplicates: int


class Events:
    """Each event is logged to the database (the UI reads it there) and handed to the listener."""

    def __init__(self, db: ExperienceDB, run_id: int, listener: Callable[[str, dict], None] | None):
        self.db, self.run_id, self.listener = db, run_id, listener

    def __call__(self, event: str, **data) -> None:
        self.db.log_event(self.run_id, event, data)
        if self.listener:
            self.listener(event, data)


def run(config: RunConfig, *, resume: bool = False, listener: Callable[[str, dict], None] | None = None,
        stop: threading.Event | None = None, roles: Roles | None = None) -> RunSummary:
    ws = Workspace.open(config.workspace)
    db, archive = ExperienceDB(ws.db_path), DesignArchive(ws.archive_path)
    run_id = open_run(db, config, resume)
    (ws.logs / f"run-{run_id}-config.json").write_text(config.to_json())
    emit = Events(db, run_id, listener)
    tier = evaluator.get_tier(config.tier)
    roles = roles or make_roles(config.model, seed=config.seed * 1000 + run_id)
    executor = sandbox.make_executor(config.executor, workers=config.effective_workers)
    stop = stop or threading.Event()
    status, duplicates_in_a_row = "finished", 0
    try:
        emit("run-start", budget=config.budget, tier=tier.key, spent=db.spent(run_id), resume=resume)
        emit("stage", stage="seeding references")
        ensure_references(db, archive, executor, tier.name, range(config.reference_seeds),
                          names=config.references or None, run_id=run_id,
                          specs=BASELINE_POINTS, on_done=lambda o: emit("reference", name=o.name, seed=o.seed,
                                                                           status=o.result.status,
                                                                           metrics=o.result.metrics))
        queue: list[Draft] = unfinished_drafts(db, run_id, tier)  # designs whose evaluation a kill interrupted
        flights: dict[Future, Flight] = {}
        while True:
            while (not stop.is_set() and len(flights) < config.effective_workers
                   and db.spent(run_id) + len(flights) < config.budget):
                context = build_context(db, tier.name, tier.version, db.spent(run_id) + len(flights), config.seed)
                if not queue:
                    emit("stage", stage="proposing")
                    proposal = roles.researcher.propose(context)
                    queue.append(roles.coder.write(proposal, context))
                draft = queue.pop(0)
                design_id = record_design(db, archive, draft, run_id, roles.name, emit)
                if design_id is None:
                    duplicates_in_a_row += 1
                    if duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                        stop.set()
                        status = "stopped"
                        emit("stage", stage=f"stopped: {MAX_DUPLICATES_IN_A_ROW} duplicate proposals in a row")
                    continue
                duplicates_in_a_row = 0
                eval_id = db.begin_evaluation(design_id, run_id, "search", tier.name, tier.version, config.seed)
                emit("evaluate-start", design_id=design_id, name=draft.proposal.name, attempt=draft.attempt)
                flights[submit(executor, draft.code, tier.name, config.seed)] = Flight(
                    eval_id, design_id, draft)
            if not flights:
                break
            done, _ = wait(flights, return_when=FIRST_COMPLETED)
            for future in done:
                flight = flights.pop(future)
                result = record_result(db, flight, future.result(), tier, emit)
                context = build_context(db, tier.name, tier.version, db.spent(run_id), config.seed)
                outcome = Outcome(flight.design_id, flight.draft.proposal, result.status, result.reason,
                                  result.metrics, db.evaluation(flight.eval_id).score)
                analysis = roles.analyst.analyse(outcome, context)
                db.add_analysis(flight.design_id, f"{roles.name}-analyst", analysis.text, analysis.data,
                                flight.eval_id)
                emit("analysis", design_id=flight.design_id, text=analysis.text)
                if result.status in FIXABLE and flight.draft.attempt < config.max_attempts and not stop.is_set():
                    queue.insert(0, roles.coder.write(flight.draft.proposal, context,
                                                      feedback=f"{result.status}: {result.reason}"))
        if stop.is_set() and status == "finished":
            status = "stopped"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        sandbox.kill_all()
        executor.shutdown()
        db.abandon_inflight(run_id)
        db.finish_run(run_id, status)
        emit("run-end", status=status, spent=db.spent(run_id))
    return RunSummary(run_id, status, db.spent(run_id), config.budget, len(db.duplicates(run_id)))


def open_run(db: ExperienceDB, config: RunConfig, resume: bool) -> int:
    """A new run, or with ``resume`` the latest one, its interrupted evaluations released."""
    latest = db.latest_run()
    if resume and latest is not None:
        db.abandon_inflight(latest.id)
        db.resume_run(latest.id)
        return latest.id
    return db.start_run(config.budget, config.tier, {**config.__dict__}, str(config.workspace))


def unfinished_drafts(db: ExperienceDB, run_id: int, tier: evaluator.Tier) -> list[Draft]:
    """Designs recorded in this run that have no finished search evaluation: evaluate them first."""
    drafts = []
    for design in db.designs():
        if design.run_id != run_id or design.origin == "baseline":
            continue
        finished = [e for e in db.evaluations(design.id) if e.purpose == "search" and e.tier == tier.name
                    and e.status not in ("running", "interrupted")]
        if not finished:
            proposal = Proposal(design.name, design.motivation, "", tuple(design.parents), design.spec)
            drafts.append(Draft(design.code, proposal, attempt=1))
    return drafts


def record_design(db: ExperienceDB, archive: DesignArchive, draft: Draft, run_id: int, origin: str,
                  emit: Events) -> int | None:
    """The new design's id, or None for a duplicate (recorded as such, costing no evaluation)."""
    existing = db.find_duplicate(draft.code)
    if existing is not None:
        kind, original = existing
        if original.run_id == run_id and not any(e.purpose == "search" for e in db.evaluations(original.id)):
            return original.id  # recorded before a kill, never evaluated: evaluate it now
        db.add_duplicate(run_id, draft.code, kind, original.id, draft.proposal.name, origin)
        emit("duplicate", name=draft.proposal.name, kind=kind, original_id=original.id)
        return None
    design_id = db.add_design(draft.proposal.name, draft.proposal.motivation, draft.code, origin=origin,
                              parents=draft.proposal.parents, spec=draft.proposal.spec, run_id=run_id)
    parents = [db.design(p).archive_commit for p in draft.proposal.parents]
    sha = archive.commit(design_id, draft.proposal.name, draft.code, [p for p in parents if p],
                         f"{draft.proposal.name}\n\n{draft.proposal.motivation}")
    db.set_archive_commit(design_id, sha)
    emit("design", design_id=design_id, name=draft.proposal.name, parents=list(draft.proposal.parents))
    return design_id


def record_result(db: ExperienceDB, flight: Flight, result: EvalResult, tier: evaluator.Tier,
                  emit: Events) -> EvalResult:
    references = db.references(tier.name, tier.version)
    status, reason = result.status, result.reason
    if status == "ok" and (gated := gate(result.metrics, references)) is not None:
        status, reason = gated
    value = score(result.metrics, tier, references) if status == "ok" else None
    db.finish_evaluation(flight.eval_id, status=status, reason=reason, metrics=result.metrics, score=value,
                         log=result.log, duration_s=result.duration_s, environment=result.environment)
    emit("evaluate-done", design_id=flight.design_id, name=flight.draft.proposal.name, status=status, reason=reason,
         score=value, metrics=result.metrics, duration_s=result.duration_s)
    return EvalResult(**{**result.to_dict(), "status": status, "reason": reason})
