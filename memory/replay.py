"""Replaying a recorded evaluation: the archived code, the recorded tier, seed and settings, run again.

A replay proves a record instead of trusting it. The design's code is read from its archive commit
(and must hash to what the database recorded), evaluated at the recorded tier, tier version and seed,
recorded as an evaluation with purpose "replay" (which no run's budget counts), and compared metric
by metric with the record under the tolerances below. The outcome, with every metric's difference
and what changed in the environment, is stored in the ``replays`` table.

What "the same" means depends on the metric (``metric_kind``):

- **structural** (parameter counts, state size, FLOPs per token): functions of the code and the
  tier's shapes only. Compared exactly, on any machine.
- **accuracy** (``*_acc``) and **loss** (``*loss*``, ``*bpb*``): produced by seeded training. On the
  machine, torch build and thread count of the record an evaluation is deterministic: data, weights
  and batches come from seeded generators and training runs on one thread (measured: the
  linear-attention baseline at the smoke tier, seed 0, recorded during a two-worker run and replayed
  twice alone, matched every compared metric exactly, at the precision the harness records). So a
  replay there matches exactly. On other hardware float rounding differs (another BLAS kernel, other
  SIMD widths) and training amplifies it, so accuracies may move by a few test items and losses by
  a few percent. The per-tier tolerances in ``TOLERANCES`` bound that: an absolute difference for
  accuracies, a relative one for losses. A replay that needed them is "reproduced" but not "exact".
- **machine** (throughput, wall times, memory, the measured scaling exponents and the flag derived
  from them): properties of the machine and its load, not of the design. Shown for information and
  never compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import evaluator
from agents import Draft, Proposal
from discover.loop import Flight, record_result
from evaluator.run import EvalResult
from evaluator.score import score
from memory import DesignArchive, ExperienceDB, code_hash
from memory.db import INTERRUPTED, RUNNING, Design, Evaluation

STRUCTURAL = frozenset({"params", "mixer_params_per_d2", "state_size", "flops_per_token"})
MACHINE = frozenset({"tokens_per_s", "peak_rss_mb", "time_exponent", "memory_exponent", "superlinear"})
# What an evaluation's environment records that can change a result (or explain why one changed).
ENVIRONMENT_KEYS = ("torch", "python", "device", "threads", "cpu", "platform", "project_commit")


@dataclass(frozen=True)
class Tolerance:
    """How far a replay on other hardware may land from the record and still count as reproduced.

    accuracy: absolute, in accuracy units (0.02 is two points, about 160 of the ~8,000 queries the
    smoke tier tests); loss: relative (0.05 is 5%). Larger test sets (the full tier) allow less.
    """

    accuracy: float
    loss: float


TOLERANCES: dict[str, Tolerance] = {
    "check": Tolerance(accuracy=0.0, loss=1e-3),  # only the loss at initialization: no training to amplify rounding
    "smoke": Tolerance(accuracy=0.02, loss=0.05),
    "quick": Tolerance(accuracy=0.02, loss=0.05),
    "full": Tolerance(accuracy=0.01, loss=0.02),
    "full-tiny": Tolerance(accuracy=1 / 16, loss=0.05),  # 16 test items: one item is 1/16
}


class ReplayError(ValueError):
    """The requested replay cannot be made (no such evaluation, a changed protocol, a corrupt archive)."""


@dataclass(frozen=True)
class MetricDiff:
    """One metric, recorded versus replayed. status: exact | within | differs | missing | informational."""

    metric: str
    kind: str
    recorded: float | bool | None
    replayed: float | bool | None
    tolerance: float | None  # absolute for accuracies, relative for losses, 0 for structural, None for machine
    status: str


@dataclass(frozen=True)
class ReplayOutcome:
    design_id: int
    name: str
    evaluation_id: int  # the record
    replay_evaluation_id: int
    replay_id: int
    tier: str
    tier_version: int
    seed: int
    code_source: str  # "archive <sha>" or "database"
    recorded_status: str
    replayed_status: str
    verdict: str  # reproduced | differs
    exact: bool
    diffs: tuple[MetricDiff, ...]
    environment: dict = field(default_factory=dict)  # key -> [recorded, now] for what changed

    @property
    def reproduced(self) -> bool:
        return self.verdict == "reproduced"

    def to_dict(self) -> dict:
        return asdict(self)


def metric_kind(metric: str) -> str:
    """structural | accuracy | loss | machine (see the module docstring); an unknown metric is compared exactly."""
    if metric in MACHINE or metric.endswith("_s"):
        return "machine"
    if metric.endswith("_acc"):
        return "accuracy"
    if "loss" in metric or "bpb" in metric:
        return "loss"
    return "structural"


def compare_metric(metric: str, recorded, replayed, tolerance: Tolerance) -> MetricDiff:
    kind = metric_kind(metric)
    if kind == "machine":
        return MetricDiff(metric, kind, recorded, replayed, None, "informational")
    allowed = {"accuracy": tolerance.accuracy, "loss": tolerance.loss}.get(kind, 0.0)
    if recorded is None or replayed is None:
        return MetricDiff(metric, kind, recorded, replayed, allowed, "missing")
    if recorded == replayed:
        return MetricDiff(metric, kind, recorded, replayed, allowed, "exact")
    if kind == "accuracy":
        within = abs(replayed - recorded) <= allowed + 1e-12
    else:
        within = kind == "loss" and math.isclose(replayed, recorded, rel_tol=allowed)
    return MetricDiff(metric, kind, recorded, replayed, allowed, "within" if within else "differs")


def compare(recorded: dict, replayed: dict, tier: str) -> list[MetricDiff]:
    """Every metric either side has, in a stable order: compared ones first, then informational ones."""
    tolerance = TOLERANCES.get(tier, TOLERANCES["smoke"])
    diffs = [compare_metric(m, recorded.get(m), replayed.get(m), tolerance) for m in sorted({*recorded, *replayed})]
    return sorted(diffs, key=lambda d: (d.status == "informational", d.metric))


def environment_changes(recorded: dict | None, now: dict) -> dict[str, list]:
    recorded = recorded or {}
    return {key: [recorded.get(key), now.get(key)] for key in ENVIRONMENT_KEYS
            if recorded.get(key) != now.get(key)}


def recorded_evaluation(db: ExperienceDB, design_id: int, evaluation_id: int | None = None) -> Evaluation:
    """The evaluation to replay: the one named, else the one ``top`` shows for the design (its best ok
    evaluation at a current tier version), else its latest finished one."""
    if evaluation_id is not None:
        evaluation = db.evaluation(evaluation_id)
        if evaluation.design_id != design_id:
            raise ReplayError(f"evaluation {evaluation_id} belongs to design {evaluation.design_id}, not {design_id}")
        if evaluation.status in (RUNNING, INTERRUPTED):
            raise ReplayError(f"evaluation {evaluation_id} never finished (status {evaluation.status!r})")
        return evaluation
    finished = [e for e in db.evaluations(design_id) if e.purpose != "replay"
                and e.status not in (RUNNING, INTERRUPTED) and e.tier in evaluator.TIERS]
    current = [e for e in finished if e.tier_version == evaluator.get_tier(e.tier).version]
    scored = [e for e in current if e.status == "ok" and e.score is not None]
    if scored:
        return max(scored, key=lambda e: (e.score, -e.id))
    if current or finished:
        return (current or finished)[-1]
    raise ReplayError(f"design {design_id} has no finished evaluation to replay")


def archived_code(db: ExperienceDB, archive: DesignArchive, design: Design) -> tuple[str, str]:
    """(code, where it came from); the archive's copy must be the code the database recorded."""
    if design.archive_commit is None:
        return design.code, "database"
    code = archive.code(design.archive_commit)
    if code_hash(code) != design.code_hash:
        raise ReplayError(f"archive commit {design.archive_commit[:12]} holds other code than the database "
                          f"records for design {design.id} (hash {code_hash(code)[:12]} != {design.code_hash[:12]})")
    return code, f"archive {design.archive_commit[:12]}"


def _quiet(event: str, **data) -> None:
    """Replays and verifications belong to no run, so the loop's events have no listener."""


def record_outcome(db: ExperienceDB, eval_id: int, design: Design, result: EvalResult, tier: evaluator.Tier,
                   emit=_quiet) -> EvalResult:
    """Finish a running evaluation as its kind was first finished: a design as the loop does (LM gate,
    score against the references), a baseline as ``discover seed`` does (no gate: it is a reference)."""
    if design.origin == "baseline":
        value = score(result.metrics, tier, db.references(tier.name, tier.version)) if result.ok else None
        db.finish_evaluation(eval_id, status=result.status, reason=result.reason, metrics=result.metrics,
                             score=value, log=result.log, duration_s=result.duration_s,
                             environment=result.environment)
        return result
    proposal = Proposal(design.name, design.motivation, "", tuple(design.parents), design.spec)
    return record_result(db, Flight(eval_id, design.id, Draft(design.code, proposal)), result, tier, emit)


def abandon(db: ExperienceDB, eval_ids) -> None:
    """Mark evaluations this process started and will not finish as interrupted (they belong to no run,
    so ``abandon_inflight`` would never reach them)."""
    for eval_id in eval_ids:
        if db.evaluation(eval_id).status == RUNNING:
            db.finish_evaluation(eval_id, INTERRUPTED, reason="the replaying process stopped first")


def replay(db: ExperienceDB, archive: DesignArchive, design_id: int, evaluation_id: int | None = None,
           evaluate=evaluator.evaluate) -> ReplayOutcome:
    """Re-run one recorded evaluation of ``design_id`` and record how it compares.

    ``evaluate(code, tier, seed)`` is the sandboxed evaluation (a parameter so a caller can run it
    elsewhere). Raises ReplayError when the record cannot be replayed as it was made.
    """
    design = db.design(design_id)
    record = recorded_evaluation(db, design_id, evaluation_id)
    tier = evaluator.get_tier(record.tier)
    if record.tier_version != tier.version:
        raise ReplayError(f"evaluation {record.id} used tier {record.tier} v{record.tier_version}; this code "
                          f"implements v{tier.version}, a different protocol, so the record cannot be replayed")
    code, source = archived_code(db, archive, design)
    eval_id = db.begin_evaluation(design_id, None, "replay", tier.name, tier.version, record.seed)
    try:
        result = record_outcome(db, eval_id, design, evaluate(code, tier.name, record.seed), tier)
    except BaseException:
        abandon(db, [eval_id])
        raise
    diffs = compare(record.metrics or {}, result.metrics, tier.name)
    compared = [d for d in diffs if d.status != "informational"]
    same_status = result.status == record.status
    reproduced = same_status and all(d.status in ("exact", "within") for d in compared)
    exact = same_status and all(d.status == "exact" for d in compared)
    changes = environment_changes(record.environment, result.environment)
    verdict = "reproduced" if reproduced else "differs"
    replay_id = db.add_replay(design_id, record.id, eval_id, verdict, exact, [asdict(d) for d in diffs],
                              {"changes": changes, "code_source": source})
    return ReplayOutcome(design_id, design.name, record.id, eval_id, replay_id, tier.name, tier.version,
                         record.seed, source, record.status, result.status, verdict, exact, tuple(diffs), changes)
