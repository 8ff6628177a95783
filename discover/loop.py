"""The discovery loop: propose, code, dedup, evaluate, analyse, record — until the budget is spent.

``run(config)`` is the whole algorithm; every step is a named call into its package. State lives
in the experience database, written one transaction per change, so a run killed at any moment
resumes (``resume=True``) without losing a finished evaluation or repeating one, and the budget
(evaluations; duplicates are free, failures count) is spent exactly.

With an LLM, a role may fail to produce anything usable (an unparseable reply, no code after its
attempts, an unreachable model): that is recorded as an ``agent-failure`` event beside the calls'
transcripts and costs no evaluation, but ``max_llm_failures`` failures in a row stop the run, so a
broken endpoint cannot loop forever. A reached spending cap stops the run too: no further LLM
call is made, evaluations in flight finish and are recorded, and the summary names the cap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

import evaluator
import sandbox
from agents import Context, Draft, Outcome, Proposal, Roles, make_roles
from agents.base import AgentFailure, StopRun
from agents.offline.space import BASELINE_POINTS
from discover.config import RunConfig, llm_settings
from discover.context import build_context
from discover.seed import ensure_references
from discover.transcripts import DBJournal
from discover.workspace import Workspace
from evaluator.run import EvalResult, submit
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
    reason: str = ""  # why a stopped run stopped
    llm: dict | None = None  # the run's LLM usage (calls, tokens, cost, unknown_cost_calls); None offline


class AgentSteps:
    """Runs one step of a role. An AgentFailure becomes an ``agent-failure`` event and None (the loop goes
    on); a StopRun, or ``limit`` failures in a row, stops the run with a message in ``reason``."""

    def __init__(self, emit: Events, stop: threading.Event, limit: int):
        self.emit, self.stop, self.limit = emit, stop, limit
        self.failures_in_a_row, self.reason, self.agents_stopped = 0, "", False

    def __call__(self, step: str, fn: Callable, *args, **kwargs):
        if self.agents_stopped:
            return None
        try:
            result = fn(*args, **kwargs)
        except AgentFailure as failure:
            self.failures_in_a_row += 1
            self.emit("agent-failure", step=step, status=failure.status, reason=failure.reason,
                      calls=list(failure.calls))
            if self.failures_in_a_row >= self.limit:
                self.halt(f"{self.limit} agent failures in a row; the last: {failure.status}: {failure.reason}")
            return None
        except StopRun as stop:
            self.agents_stopped = True
            self.halt(str(stop))
            return None
        self.failures_in_a_row = 0
        return result

    def halt(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            self.emit("stage", stage=f"stopped: {reason}")
        self.stop.set()


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
    # made first: a cluster that cannot be reached fails the run before anything is recorded
    executor = sandbox.make_executor(config.executor, workers=config.effective_workers, **config.executor_options)
    run_id = open_run(db, config, resume)
    (ws.logs / f"run-{run_id}-config.json").write_text(config.to_json())
    emit = Events(db, run_id, listener)
    tier = evaluator.get_tier(config.tier)
    roles = roles or agent_roles(config, db, run_id)
    stop = stop or threading.Event()
    steps = AgentSteps(emit, stop, config.max_llm_failures)
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
                    if (draft := steps("propose", propose, roles, context)) is None:
                        continue
                    queue.append(draft)
                draft = queue.pop(0)
                design_id = record_design(db, archive, draft, run_id, roles.name, emit)
                if design_id is None:
                    duplicates_in_a_row += 1
                    if duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                        steps.halt(f"{MAX_DUPLICATES_IN_A_ROW} duplicate proposals in a row")
                    continue
                duplicates_in_a_row = 0
                db.link_llm_calls((*draft.proposal.calls, *draft.calls), design_id)
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
                analyse(db, roles, steps, outcome, context, flight.eval_id, emit)
                if result.status in FIXABLE and flight.draft.attempt < config.max_attempts and not stop.is_set():
                    fixed = steps("fix", roles.coder.write, flight.draft.proposal, context,
                                  feedback=f"{result.status}: {result.reason}", previous=flight.draft)
                    if fixed is not None:
                        queue.insert(0, fixed)
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
        emit("run-end", status=status, spent=db.spent(run_id), reason=steps.reason)
    llm = db.llm_usage(run_id) if roles.name == "llm" else None
    return RunSummary(run_id, status, db.spent(run_id), config.budget, len(db.duplicates(run_id)), steps.reason, llm)


def agent_roles(config: RunConfig, db: ExperienceDB, run_id: int) -> Roles:
    """The configured backend's roles; the LLM roles record their calls in ``db`` through a journal."""
    seed = config.seed * 1000 + run_id
    if config.backend == "offline":
        return make_roles("offline", seed=seed)
    journal = DBJournal(db, run_id, cache_from=config.llm_cache_from or None)
    return make_roles("llm", seed=seed, settings=llm_settings(config), journal=journal)


def propose(roles: Roles, context: Context) -> Draft:
    """A proposal from the researcher, written as a file by the coder."""
    return roles.coder.write(roles.researcher.propose(context), context)


def analyse(db: ExperienceDB, roles: Roles, steps: AgentSteps, outcome: Outcome, context: Context, eval_id: int,
            emit: Events) -> None:
    """The analyst's analysis and, when there is a judge, its qualitative score, recorded with the design."""
    analysis = steps("analyse", roles.analyst.analyse, outcome, context)
    if analysis is not None:
        db.add_analysis(outcome.design_id, f"{roles.name}-analyst", analysis.text, analysis.data, eval_id)
        emit("analysis", design_id=outcome.design_id, text=analysis.text)
    judgement = steps("judge", roles.judge.judge, outcome, context) if roles.judge is not None else None
    if judgement is not None:
        db.add_analysis(outcome.design_id, f"{roles.name}-judge", judgement.text, judgement.data, eval_id)
        emit("judgement", design_id=outcome.design_id, score=judgement.data.get("judge_score"), text=judgement.text)


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
