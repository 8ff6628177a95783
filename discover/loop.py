"""The discovery loop: propose, code, dedup, evaluate, analyse, record — until the budget is spent.

``run(config)`` is the whole algorithm; every step is a named call into its package. State lives
in the experience database, written one transaction per change, so a run killed at any moment
resumes (``resume=True``) without losing a finished evaluation or repeating one, and the budget
(evaluations; duplicates are free, failures count) is spent exactly. A resumed run continues as it was
started, with its own budget and tier; a run that already finished is left as it is.

With an LLM, a role may fail to produce anything usable (an unparseable reply, no code after its
attempts, an unreachable model): that is recorded as an ``agent-failure`` event beside the calls'
transcripts and costs no evaluation, but ``max_llm_failures`` failures in a row stop the run, so a
broken endpoint cannot loop forever. A reached spending cap stops the run too: no further LLM
call is made, evaluations in flight finish and are recorded, and the summary names the cap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import evaluator
from agents import Context, Draft, Outcome, Proposal, Roles, make_roles
from discover.config import RunConfig, llm_settings
from discover.flights import Flight, Flights
from discover.steps import AgentSteps, Events
from discover.transcripts import DBJournal
from discover.workspace import Workspace
from evaluator.design import check_static
from evaluator.run import submit
from memory import DesignArchive, ExperienceDB, Run, racing
from memory.context import ContextBuilder
from memory.recorder import Recorder
from memory.references import ensure_references

# Failures a coder can fix by rewriting the file; the rest are verdicts on the architecture.
FIXABLE = frozenset({"syntax", "unsafe", "contract", "build", "shape", "params", "error", "recurrent-mismatch"})
MAX_DUPLICATES_IN_A_ROW = 50


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    status: str
    spent: int
    budget: int
    duplicates: int
    reason: str = ""  # why a stopped run stopped
    llm: dict | None = None  # the run's LLM usage (calls, tokens, cost, unknown_cost_calls); None offline
    nothing_to_resume: bool = False  # resume=True found the latest run finished and did nothing
    agents_failed: bool = False  # stopped because the agents failed max_llm_failures times in a row
    extra_seeds: int = 0  # evaluations spent on more seeds of designs that could reach the top (racing)


def run(config: RunConfig, *, resume: bool = False, listener: Callable[[str, dict], None] | None = None,
        stop: threading.Event | None = None, roles: Roles | None = None) -> RunSummary:
    """Run the loop until the budget is spent. resume: continue the workspace's latest run with its own budget
    and tier (``config.budget`` and ``config.tier`` are not read), or, when it finished, return its summary
    with ``nothing_to_resume`` and do nothing; with no run to continue, a new one starts."""
    ws = Workspace.open(config.workspace)
    db = ExperienceDB(ws.db_path)
    latest = db.records.latest_run() if resume else None
    if latest is not None:
        config = replace(config, budget=latest.budget if latest.budget is not None else config.budget,
                         tier=latest.tier)
        if latest.status == "finished":
            summary = RunSummary(latest.id, latest.status, db.records.spent(latest.id), config.budget,
                                 len(db.records.duplicates(latest.id)), nothing_to_resume=True)
            db.close()
            return summary
    archive = DesignArchive(ws.archive_path)
    # made first: a cluster that cannot be reached fails the run before anything is recorded
    executor = evaluator.make_executor(config.executor, workers=config.effective_workers, **config.executor_options)
    records, recorder = db.records, Recorder(db.records, archive, db.heldout_key)
    run_id = open_run(recorder, config, latest)
    (ws.logs / f"run-{run_id}-config.json").write_text(config.to_json())
    emit = Events(records, run_id, listener)
    tier = evaluator.get_tier(config.tier)
    roles = roles or agent_roles(config, db, run_id)
    stop = stop or threading.Event()
    steps = AgentSteps(emit, stop, config.max_llm_failures)
    flights = Flights(config.effective_workers)
    status, duplicates_in_a_row = "finished", 0
    try:
        emit("run-start", budget=config.budget, tier=tier.key, spent=records.spent(run_id), resume=resume)
        seed_references(recorder, executor, config, run_id, emit)
        memory = ContextBuilder(db.views, tier.name, tier.version, config.seed)
        queue = [redraft(design) for design in recorder.awaiting(run_id)]  # what a kill left unevaluated
        races = contenders(records, tier, config, run_id, flights)  # and what it left mid-race
        while True:
            while not stop.is_set() and flights.has_room(records.spent(run_id), config.budget):
                if races:
                    design_id, seed = races.pop(0)
                    design = records.design(design_id)
                    eval_id = recorder.begin(design_id, tier, seed, purpose="search", run_id=run_id)
                    emit("evaluate-start", design_id=design_id, name=design.name, seed=seed, race=True)
                    evaluation = submit(executor, design.code, tier.name, seed, recorder.heldout_key)
                    flights.launch(evaluation, Flight(eval_id, design_id, redraft(design), race=True))
                    continue
                if not queue:
                    emit("stage", stage="proposing")
                    context = memory.context(records.spent(run_id) + len(flights),
                                             racing={f.design_id for f in flights.racing()})
                    if (draft := steps("propose", propose, roles, context)) is None:
                        continue
                    queue.append(draft)
                draft = queue.pop(0)
                design_id = record_design(recorder, draft, run_id, roles.name, emit)
                if design_id is None:
                    duplicates_in_a_row += 1
                    if duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                        steps.halt(f"{MAX_DUPLICATES_IN_A_ROW} duplicate proposals in a row")
                    continue
                duplicates_in_a_row = 0
                db.journal.link_llm_calls((*draft.proposal.calls, *draft.calls), design_id)
                eval_id = recorder.begin(design_id, tier, config.seed, purpose="search", run_id=run_id)
                emit("evaluate-start", design_id=design_id, name=draft.proposal.name, attempt=draft.attempt)
                evaluation = submit(executor, draft.code, tier.name, config.seed, recorder.heldout_key)
                flights.launch(evaluation, Flight(eval_id, design_id, draft))
            if not flights:
                break
            for flight, result in flights.landed():
                finished = recorder.finish(flight.eval_id, result)
                emit("evaluate-done", design_id=flight.design_id, name=flight.draft.proposal.name,
                     status=finished.status, reason=finished.reason, score=finished.score, metrics=result.metrics,
                     duration_s=result.duration_s, race=flight.race)
                if finished.status == "ok":
                    say_twins(records, tier, run_id, flight.design_id, emit)
                if flight.race:
                    continue
                context = memory.context(records.spent(run_id), racing={f.design_id for f in flights.racing()})
                outcome = Outcome(flight.design_id, flight.draft.proposal, finished.status, finished.reason,
                                  result.metrics, finished.score)
                analyse(records, roles, steps, outcome, context, flight.eval_id, emit)
                if finished.status in FIXABLE and flight.draft.attempt < config.max_attempts and not stop.is_set():
                    fixed = steps("fix", roles.coder.write, flight.draft.proposal, context,
                                  feedback=f"{finished.status}: {finished.reason}", previous=flight.draft)
                    if fixed is not None:
                        queue.insert(0, fixed)
            races = contenders(records, tier, config, run_id, flights)
        if stop.is_set() and status == "finished":
            status = "stopped"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        executor.cancel_all()
        executor.shutdown()
        recorder.abandon_run(run_id)
        records.finish_run(run_id, status)
        emit("run-end", status=status, spent=records.spent(run_id), reason=steps.reason)
    llm = db.journal.llm_usage(run_id) if roles.name == "llm" else None
    return RunSummary(run_id, status, records.spent(run_id), config.budget, len(records.duplicates(run_id)),
                      steps.reason, llm, agents_failed=steps.gave_up, extra_seeds=extra_seeds(records, run_id, config))


def extra_seeds(records, run_id: int, config: RunConfig) -> int:
    """The run's finished search evaluations at a seed other than the run's own: racing's share of the budget."""
    mine = [d.id for d in records.designs() if d.run_id == run_id]
    return sum(1 for d in mine for e in records.evaluations(d) if e.run_id == run_id and e.purpose == "search"
               and e.seed != config.seed and e.status not in ("running", "interrupted"))


def say_twins(records, tier, run_id: int, design_id: int, emit: Events) -> None:
    """A "twin" event for each design that the landing of ``design_id``'s evaluation showed to train exactly as
    another (``memory.twins``): itself, or an earlier one whose original it is. Each twin is told once a run."""
    told = {e.data["design_id"] for e in records.events(run_id) if e.kind == "twin" and e.data}
    for twin, original in sorted(records.twins(tier.name, tier.version).items()):
        if design_id in (twin, original) and twin not in told:
            emit("twin", design_id=twin, name=records.design(twin).name, original_id=original,
                 original_name=records.design(original).name)


def contenders(records, tier, config: RunConfig, run_id: int, flights: Flights) -> list[tuple[int, int]]:
    """(design id, seed) of the run's designs that deserve another seed before they rank as elites or
    parents (``memory.racing``); none when ``race_seeds`` is 1. A twin (``memory.twins``) races no further:
    its original's seeds stand for it."""
    if config.race_seeds <= 1:
        return []
    twins = records.twins(tier.name, tier.version)
    table = {d: by_seed for d, by_seed in records.seed_scores(tier.name, tier.version).items() if d not in twins}
    return racing.wanted(table, racing.run_designs(table, run_id), config.seed, busy=flights.design_ids(),
                         seeds=config.race_seeds)


def agent_roles(config: RunConfig, db: ExperienceDB, run_id: int) -> Roles:
    """The configured backend's roles; the LLM roles record their calls in ``db`` through a journal."""
    seed = config.seed * 1000 + run_id
    if config.backend == "offline":
        return make_roles("offline", seed=seed)
    journal = DBJournal(db, run_id, cache_from=config.llm_cache_from or None)
    return make_roles("llm", seed=seed, settings=llm_settings(config), journal=journal, static_check=check_static)


def open_run(recorder: Recorder, config: RunConfig, latest: Run | None) -> int:
    """A new run, or the ``latest`` one to resume, its interrupted evaluations released."""
    if latest is not None:
        recorder.abandon_run(latest.id)
        recorder.records.resume_run(latest.id)
        return latest.id
    return recorder.records.start_run(config.budget, config.tier, {**config.__dict__}, str(config.workspace))


def seed_references(recorder: Recorder, executor, config: RunConfig, run_id: int, emit: Events) -> None:
    """The references every score is measured against: baselines evaluated at the run's tier."""
    ensure_references(recorder, executor, config.tier, range(config.reference_seeds),
                      names=config.references or None, run_id=run_id,
                      on_planned=lambda total: emit("stage", stage="seeding references", total=total,
                                                    workers=config.effective_workers),
                      on_done=lambda o: emit("reference", name=o.name, seed=o.seed, status=o.result.status,
                                             metrics=o.result.metrics, duration_s=o.result.duration_s))


def propose(roles: Roles, context: Context) -> Draft:
    """A proposal from the researcher, written as a file by the coder."""
    return roles.coder.write(roles.researcher.propose(context), context)


def redraft(design) -> Draft:
    """The draft of a design recorded before a kill, to evaluate as it was written."""
    return Draft(design.code, Proposal(design.name, design.motivation, "", tuple(design.parents), design.spec))


def record_design(recorder: Recorder, draft: Draft, run_id: int, origin: str, emit: Events) -> int | None:
    """The design's id, or None for a duplicate (recorded as such, costing no evaluation)."""
    proposal = draft.proposal
    recorded = recorder.design(draft.code, name=proposal.name, motivation=proposal.motivation, origin=origin,
                               parents=proposal.parents, spec=proposal.spec, run_id=run_id)
    if recorded.is_duplicate:
        emit("duplicate", name=proposal.name, kind=recorded.duplicate, original_id=recorded.design_id)
        return None
    if not recorded.resumed:
        emit("design", design_id=recorded.design_id, name=proposal.name, parents=list(proposal.parents))
    return recorded.design_id


def analyse(records, roles: Roles, steps: AgentSteps, outcome: Outcome, context: Context, eval_id: int,
            emit: Events) -> None:
    """The analyst's analysis and, when there is a judge, its qualitative score, recorded with the design."""
    analysis = steps("analyse", roles.analyst.analyse, outcome, context)
    if analysis is not None:
        records.add_analysis(outcome.design_id, f"{roles.name}-analyst", analysis.text, analysis.data, eval_id)
        emit("analysis", design_id=outcome.design_id, text=analysis.text)
    judgement = steps("judge", roles.judge.judge, outcome, context) if roles.judge is not None else None
    if judgement is not None:
        records.add_analysis(outcome.design_id, f"{roles.name}-judge", judgement.text, judgement.data, eval_id)
        emit("judgement", design_id=outcome.design_id, score=judgement.data.get("judge_score"), text=judgement.text)
