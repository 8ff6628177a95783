"""Replaying a recorded evaluation: the archived code, the recorded tier, seed and settings, run again.

A replay proves a record instead of trusting it. The design's code is read from its archive commit
(and must hash to what the database recorded), evaluated at the recorded tier, tier version and seed,
recorded as an evaluation with purpose "replay" (which no run's budget counts), and compared metric
by metric with the record. What counts as reproduced (exact for structural metrics, per-tier
tolerances for trained ones, machine figures shown only) is ``evaluator.reproduce``'s to say. The
outcome, with every metric's difference and what changed in the environment, is stored in the
``replays`` table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import evaluator
from evaluator.reproduce import MetricDiff, compare, environment_changes
from memory.archive import DesignArchive
from memory.db import INTERRUPTED, RUNNING, ExperienceDB
from memory.dedup import code_hash
from memory.protocols import Records
from memory.recorder import Recorder
from memory.records import Design, Evaluation

ABANDONED = "the replaying process stopped first"


class ReplayError(ValueError):
    """The requested replay cannot be made (no such evaluation, a changed protocol, a corrupt archive)."""


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


def recorded_evaluation(records: Records, design_id: int, evaluation_id: int | None = None) -> Evaluation:
    """The evaluation to replay: the one named, else the one ``top`` shows for the design (its best ok
    evaluation at a current tier version), else its latest finished one."""
    if evaluation_id is not None:
        evaluation = records.evaluation(evaluation_id)
        if evaluation.design_id != design_id:
            raise ReplayError(f"evaluation {evaluation_id} belongs to design {evaluation.design_id}, not {design_id}")
        if evaluation.status in (RUNNING, INTERRUPTED):
            raise ReplayError(f"evaluation {evaluation_id} never finished (status {evaluation.status!r})")
        return evaluation
    finished = [e for e in records.evaluations(design_id) if e.purpose != "replay"
                and e.status not in (RUNNING, INTERRUPTED) and e.tier in evaluator.TIERS]
    current = [e for e in finished if e.tier_version == evaluator.get_tier(e.tier).version]
    scored = [e for e in current if e.status == "ok" and e.score is not None]
    if scored:
        return max(scored, key=lambda e: (e.score, -e.id))
    if current or finished:
        return (current or finished)[-1]
    raise ReplayError(f"design {design_id} has no finished evaluation to replay")


def archived_code(archive: DesignArchive, design: Design) -> tuple[str, str]:
    """(code, where it came from); the archive's copy must be the code the database recorded."""
    if design.archive_commit is None:
        return design.code, "database"
    code = archive.code(design.archive_commit)
    if code_hash(code) != design.code_hash:
        raise ReplayError(f"archive commit {design.archive_commit[:12]} holds other code than the database "
                          f"records for design {design.id} (hash {code_hash(code)[:12]} != {design.code_hash[:12]})")
    return code, f"archive {design.archive_commit[:12]}"


def replay(db: ExperienceDB, archive: DesignArchive, design_id: int, evaluation_id: int | None = None,
           evaluate=evaluator.evaluate) -> ReplayOutcome:
    """Re-run one recorded evaluation of ``design_id`` and record how it compares.

    ``evaluate(code, tier, seed)`` is the sandboxed evaluation (a parameter so a caller can run it
    elsewhere). Raises ReplayError when the record cannot be replayed as it was made.
    """
    recorder = Recorder(db.records, archive, db.heldout_key)
    design = db.records.design(design_id)
    record = recorded_evaluation(db.records, design_id, evaluation_id)
    tier = evaluator.get_tier(record.tier)
    if record.tier_version != tier.version:
        raise ReplayError(f"evaluation {record.id} used tier {record.tier} v{record.tier_version}; this code "
                          f"implements v{tier.version}, a different protocol, so the record cannot be replayed")
    code, source = archived_code(archive, design)
    eval_id = recorder.begin(design_id, tier, record.seed, purpose="replay")
    try:
        finished = recorder.finish(eval_id, evaluate(code, tier.name, record.seed, key=recorder.heldout_key))
    except BaseException:
        recorder.abandon([eval_id], reason=ABANDONED)
        raise
    diffs = compare(record.metrics or {}, finished.result.metrics, tier.name)
    compared = [d for d in diffs if d.status != "informational"]
    same_status = finished.status == record.status
    reproduced = same_status and all(d.status in ("exact", "within") for d in compared)
    exact = same_status and all(d.status == "exact" for d in compared)
    changes = environment_changes(record.environment, finished.result.environment)
    verdict = "reproduced" if reproduced else "differs"
    replay_id = db.provenance.add_replay(design_id, record.id, eval_id, verdict, exact, [asdict(d) for d in diffs],
                                         {"changes": changes, "code_source": source})
    return ReplayOutcome(design_id, design.name, record.id, eval_id, replay_id, tier.name, tier.version,
                         record.seed, source, record.status, finished.status, verdict, exact, tuple(diffs), changes)
