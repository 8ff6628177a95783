"""Importing a user's own design: it enters memory the way a proposal from the loop does.

The file is checked statically first (syntax and the safety scan, before anything runs), then
deduplicated against every recorded design (exact code hash, then the structural hash that sees
through renamed identifiers), recorded with origin "user" and archived, evaluated in the sandbox and
finished through the loop's own ``record_design`` and ``record_result``: the same gate, the same
score against the references, the same records. A duplicate is recorded as such and costs no
evaluation. Imported designs belong to no run, so no run's budget counts them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import evaluator
from agents import Draft, Proposal
from discover.loop import Events, Flight, record_design, record_result
from discover.replay import abandon
from evaluator.run import describe_safely, static_failure
from memory import DesignArchive, ExperienceDB

ORIGIN = "user"


class ImportDesignError(ValueError):
    """The file cannot be imported (missing, unreadable, or not text)."""


@dataclass(frozen=True)
class ImportOutcome:
    """status: "ok" or a named failure of the evaluation, "duplicate", or the static check's failure
    (the file was not recorded then)."""

    status: str
    reason: str
    name: str
    design_id: int | None  # the new design, or for a duplicate the design it repeats
    evaluation_id: int | None
    duplicate_of: str | None  # "exact" | "structural" when it repeats a recorded design
    metrics: dict
    score: float | None
    references: int  # references at the tier the score is measured against (0: no score)

    def to_dict(self) -> dict:
        return asdict(self)


def read_design(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise ImportDesignError(f"no such file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportDesignError(f"cannot read {path} as UTF-8 text: {exc}") from None


def import_design(db: ExperienceDB, archive: DesignArchive, path: str | Path, tier: str = evaluator.DEFAULT_TIER,
                  seed: int = 0, evaluate=evaluator.evaluate) -> ImportOutcome:
    """Check, deduplicate, record and evaluate the design file at ``path``."""
    code = read_design(path)
    spec = evaluator.get_tier(tier)
    name, motivation = describe_safely(code)
    name = name or Path(path).stem
    failed = static_failure(code, spec.name, seed)
    if failed is not None:  # nothing ran; a file that does not parse or is unsafe is not worth a record
        return ImportOutcome(failed.status, failed.reason, name, None, None, None, {}, None, 0)
    emit = Events(db, None, None)
    draft = Draft(code, Proposal(name, motivation or "", "imported from a file", ()))
    duplicate = db.find_duplicate(code)
    if duplicate is None:
        design_id = record_design(db, archive, draft, None, ORIGIN, emit)
    elif _interrupted_import(db, duplicate[1]):
        design_id = duplicate[1].id  # recorded, but its evaluation never finished: evaluate it now
    else:
        kind, original = duplicate
        db.add_duplicate(None, code, kind, original.id, name, ORIGIN)
        return ImportOutcome("duplicate", f"{kind} duplicate of design {original.id} ({original.name})", name,
                             original.id, None, kind, {}, None, 0)
    eval_id = db.begin_evaluation(design_id, None, "search", spec.name, spec.version, seed)
    try:
        result = record_result(db, Flight(eval_id, design_id, draft), evaluate(code, spec.name, seed), spec, emit)
    except BaseException:
        abandon(db, [eval_id])
        raise
    return ImportOutcome(result.status, result.reason, name, design_id, eval_id, None, result.metrics,
                         db.evaluation(eval_id).score, len(db.references(spec.name, spec.version)))


def _interrupted_import(db: ExperienceDB, design) -> bool:
    """An imported design whose evaluation never finished (the process was stopped): import it again."""
    return design.origin == ORIGIN and design.run_id is None and not any(
        e.purpose == "search" and e.status not in ("running", "interrupted") for e in db.evaluations(design.id))
