"""Importing a user's own design: it enters memory the way a proposal from the loop does.

A file ``discover export`` wrote, unchanged, is recognised first (``memory.export.export_source``:
its card names the design, and exporting that design again must give the file) and recorded as an
"export" duplicate of it; nothing in the file runs, and the scan is not asked about the reference
blocks the export inlined. Any other file is checked statically (syntax and the safety scan, before
anything runs), then deduplicated against every recorded design (exact code hash, then the
structural hash that sees through renamed identifiers), recorded with origin "user" and archived,
evaluated in the sandbox and finished through the ``Recorder`` the loop uses: the same gate, the
same score against the references, the same records. A duplicate is recorded as such and costs no
evaluation. Imported designs belong to no run, so no run's budget counts them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import evaluator
from evaluator.run import describe_safely, static_failure
from memory.export import export_source
from memory.recorder import Recorder

ORIGIN = "user"
EXPORT = "export"  # the duplicate kind of an unchanged export of a recorded design


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
    duplicate_of: str | None  # "exact" | "structural" | "export" when it repeats a recorded design
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


def import_design(recorder: Recorder, path: str | Path, tier: str = evaluator.DEFAULT_TIER, seed: int = 0,
                  evaluate=evaluator.evaluate) -> ImportOutcome:
    """Check, deduplicate, record and evaluate the design file at ``path``."""
    code = read_design(path)
    spec = evaluator.get_tier(tier)
    name, motivation = describe_safely(code)
    name = name or Path(path).stem
    source = export_source(recorder.records, code)
    if source is not None:
        recorder.duplicate(code, EXPORT, source, name=name, origin=ORIGIN)
        return ImportOutcome("duplicate", f"an unchanged export of design {source.id} ({source.name})", name,
                             source.id, None, EXPORT, {}, None, 0)
    failed = static_failure(code, spec.name, seed)
    if failed is not None:  # nothing ran; a file that does not parse or is unsafe is not worth a record
        return ImportOutcome(failed.status, failed.reason, name, None, None, None, {}, None, 0)
    recorded = recorder.design(code, name=name, motivation=motivation or "", origin=ORIGIN)
    if recorded.is_duplicate:
        original = recorded.original
        return ImportOutcome("duplicate", f"{recorded.duplicate} duplicate of design {original.id} ({original.name})",
                             name, original.id, None, recorded.duplicate, {}, None, 0)
    eval_id = recorder.begin(recorded.design_id, spec, seed, purpose="search")
    try:
        finished = recorder.finish(eval_id, evaluate(code, spec.name, seed, key=recorder.heldout_key))
    except BaseException:
        recorder.abandon([eval_id])
        raise
    return ImportOutcome(finished.status, finished.reason, name, recorded.design_id, eval_id, None,
                         finished.result.metrics, finished.score,
                         len(recorder.records.references(spec.name, spec.version)))
