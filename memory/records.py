"""The records of the search: runs, designs (with their duplicates and lineage), evaluations, analyses
and the event log of each run.

A design's code is unique by its whitespace-normalized hash; a proposal that repeats a recorded design
is kept as a duplicate and costs no evaluation. An evaluation is recorded as running before it starts
and finished once, so a killed process loses at most the evaluations in flight: `abandon_inflight`
marks them interrupted and `spent` counts only finished evaluations, which makes `--resume` budget
accounting exact.
"""

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from statistics import mean, stdev
from typing import Any, ClassVar

from memory.dedup import code_hash, structural_hash
from memory.store import INTERRUPTED, RUNNING, Store, check_choice, now, to_json
from memory.twins import Twins

ORIGINS = ("baseline", "llm", "offline", "user")
PURPOSES = ("seed", "search", "replay", "verify")
RUN_ENDINGS = ("finished", "interrupted", "stopped")
DUPLICATE_KINDS = ("exact", "structural", "export")  # "export": an unchanged `discover export` of the design
# Which evaluations may stand for their design at a tier (in `top`, `show`, the UI): every one but a replay,
# which repeats a record to prove it and is no new measurement. As SQL over the evaluations table.
REPRESENTS = "purpose != 'replay'"


class RecordNotFound(LookupError):
    """No row with the requested id."""


class DuplicateDesignError(ValueError):
    """A design with the same whitespace-normalized code is already recorded."""

    def __init__(self, original_id: int):
        super().__init__(f"the same code is already recorded as design {original_id}")
        self.original_id = original_id


class _Record:
    """A row as a frozen dataclass; columns named in `_json` hold JSON text, and a JSON list becomes a tuple."""

    _json: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]):
        values = {f.name: row[f.name] for f in fields(cls)}
        for name in cls._json:
            if values[name] is not None:
                value = json.loads(values[name])
                values[name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


@dataclass(frozen=True)
class Run(_Record):
    id: int
    started_at: str
    ended_at: str | None
    status: str
    budget: int | None
    tier: str
    config: dict
    workspace: str | None
    _json: ClassVar = ("config",)


@dataclass(frozen=True)
class Design(_Record):
    id: int
    name: str
    motivation: str
    code: str
    code_hash: str
    struct_hash: str | None
    origin: str
    parents: tuple[int, ...]
    archive_commit: str | None
    spec: dict | None
    run_id: int | None
    created_at: str
    _json: ClassVar = ("parents", "spec")


@dataclass(frozen=True)
class Evaluation(_Record):
    id: int
    design_id: int
    run_id: int | None
    purpose: str
    tier: str
    tier_version: int
    seed: int
    status: str
    reason: str | None
    metrics: dict | None
    score: float | None
    log: str | None
    duration_s: float | None
    environment: dict | None
    created_at: str
    finished_at: str | None
    _json: ClassVar = ("metrics", "environment")


@dataclass(frozen=True)
class Ranked:
    """A design on the leaderboard: its best-scored evaluation (whose metrics a row shows) and its evaluation
    per seed (one each, ``Records.seed_scores``)."""

    design: Design
    evaluation: Evaluation
    seeds: tuple[Evaluation, ...]

    @property
    def scores(self) -> tuple[float, ...]:
        return tuple(e.score for e in self.seeds)

    @property
    def mean(self) -> float:
        return mean(self.scores)

    def interval(self, confidence: float = 0.95) -> float | None:
        """The half-width of Student's t interval for the mean, or None on one seed."""
        return interval(self.scores, confidence)


def scores_per_seed(evaluations: Sequence[Evaluation], tier: str, tier_version: int) -> dict[int, float]:
    """The score of each seed at one tier version: its first ok evaluation, replays aside (what ``top`` ranks by)."""
    by_seed: dict[int, float] = {}
    for e in evaluations:
        if (e.tier, e.tier_version) == (tier, tier_version) and e.status == "ok" and e.score is not None \
                and e.purpose != "replay":
            by_seed.setdefault(e.seed, e.score)
    return by_seed


def interval(scores: Sequence[float], confidence: float = 0.95) -> float | None:
    """The half-width of Student's t interval for the mean of ``scores``, or None for fewer than two."""
    if len(scores) < 2:
        return None
    from evaluator.stats import t_quantile

    return t_quantile(1 - (1 - confidence) / 2, len(scores) - 1) * stdev(scores) / len(scores) ** 0.5


@dataclass(frozen=True)
class Event(_Record):
    id: int
    run_id: int | None
    ts: str
    kind: str
    data: dict | None
    _json: ClassVar = ("data",)


class RecordStore(Store):
    """Runs, designs, evaluations, analyses and events."""

    def _one(self, record: type, table: str, id_: int):
        rows = self._rows(f"SELECT * FROM {table} WHERE id = ?", [id_])
        if not rows:
            raise RecordNotFound(f"no {table[:-1]} with id {id_}")
        return record.from_row(rows[0])

    def start_run(self, budget: int | None, tier: str, config: Mapping[str, Any], workspace: str | None = None) -> int:
        return self._insert("runs", {
            "started_at": now(), "ended_at": None, "status": RUNNING, "budget": budget, "tier": tier,
            "config": json.dumps(config), "workspace": workspace,
        })

    def finish_run(self, run_id: int, status: str) -> None:
        check_choice("run status", status, RUN_ENDINGS)
        with self.transaction():
            self.db["runs"].update(run_id, {"status": status, "ended_at": now()})

    def resume_run(self, run_id: int) -> Run:
        """Mark an ended run running again; call `abandon_inflight` first if it was killed."""
        with self.transaction():
            self.db["runs"].update(run_id, {"status": RUNNING, "ended_at": None})
        return self.run(run_id)

    def run(self, run_id: int) -> Run:
        return self._one(Run, "runs", run_id)

    def latest_run(self) -> Run | None:
        rows = self._rows("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        return Run.from_row(rows[0]) if rows else None

    def find_by_code_hash(self, h: str) -> Design | None:
        rows = self._rows("SELECT * FROM designs WHERE code_hash = ?", [h])
        return Design.from_row(rows[0]) if rows else None

    def find_by_struct_hash(self, h: str | None) -> Design | None:
        """The first recorded design with structural hash `h` (None never matches)."""
        rows = self._rows("SELECT * FROM designs WHERE struct_hash = ? ORDER BY id LIMIT 1", [h])
        return Design.from_row(rows[0]) if rows else None

    def find_duplicate(self, code: str) -> tuple[str, Design] | None:
        """("exact" | "structural", original) when `code` repeats a recorded design, cheapest check first."""
        original = self.find_by_code_hash(code_hash(code))
        if original is not None:
            return "exact", original
        original = self.find_by_struct_hash(structural_hash(code))
        return ("structural", original) if original is not None else None

    def add_design(
        self,
        name: str,
        motivation: str,
        code: str,
        *,
        origin: str,
        parents: Sequence[int] = (),
        spec: Mapping[str, Any] | None = None,
        run_id: int | None = None,
        archive_commit: str | None = None,
    ) -> int:
        """Record a new design; raises DuplicateDesignError if its code is already recorded."""
        check_choice("origin", origin, ORIGINS)
        h = code_hash(code)
        with self.transaction():
            parent_ids = json.dumps(list(parents))
            known = self._rows("SELECT id FROM designs WHERE id IN (SELECT value FROM json_each(?))", [parent_ids])
            if missing := sorted(set(parents) - {row["id"] for row in known}):
                raise ValueError(f"parents must be recorded designs; unknown ids {missing}")
            if (original := self.find_by_code_hash(h)) is not None:
                raise DuplicateDesignError(original.id)
            return self.db["designs"].insert({
                "name": name, "motivation": motivation, "code": code, "code_hash": h,
                "struct_hash": structural_hash(code), "origin": origin, "parents": parent_ids,
                "archive_commit": archive_commit, "spec": to_json(spec), "run_id": run_id, "created_at": now(),
            }).last_pk

    def set_archive_commit(self, design_id: int, sha: str) -> None:
        with self.transaction():
            self.db["designs"].update(design_id, {"archive_commit": sha})

    def add_duplicate(
        self, run_id: int | None, code: str, kind: str, original_id: int, name: str, origin: str
    ) -> int:
        """Record a proposal that repeats design `original_id`; it costs no evaluation."""
        check_choice("duplicate kind", kind, DUPLICATE_KINDS)
        check_choice("origin", origin, ORIGINS)
        return self._insert("duplicates", {
            "run_id": run_id, "code_hash": code_hash(code), "struct_hash": structural_hash(code), "kind": kind,
            "original_id": original_id, "name": name, "origin": origin, "code": code, "created_at": now(),
        })

    def duplicates(self, run_id: int | None = None) -> list[dict[str, Any]]:
        if run_id is None:
            return self._rows("SELECT * FROM duplicates ORDER BY id")
        return self._rows("SELECT * FROM duplicates WHERE run_id = ? ORDER BY id", [run_id])

    def design(self, design_id: int) -> Design:
        return self._one(Design, "designs", design_id)

    def designs(self, origin: str | None = None) -> list[Design]:
        return self._designs_in("SELECT * FROM designs WHERE ? IS NULL OR origin = ? ORDER BY id", [origin, origin])

    def _designs_in(self, sql: str, params: Sequence) -> list[Design]:
        return [Design.from_row(r) for r in self._rows(sql, params)]

    def begin_evaluation(
        self, design_id: int, run_id: int | None, purpose: str, tier: str, tier_version: int, seed: int
    ) -> int:
        """Record an evaluation as in flight (status "running") before it starts."""
        check_choice("purpose", purpose, PURPOSES)
        return self._insert("evaluations", {
            "design_id": design_id, "run_id": run_id, "purpose": purpose, "tier": tier,
            "tier_version": tier_version, "seed": seed, "status": RUNNING, "created_at": now(),
        })

    def finish_evaluation(
        self,
        eval_id: int,
        status: str,
        reason: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        score: float | None = None,
        log: str | None = None,
        duration_s: float | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        """Close a running evaluation with "ok" or a named failure; only "ok" may carry a score."""
        if status == RUNNING:
            raise ValueError("a finished evaluation needs a final status, not 'running'")
        if score is not None and (status != "ok" or not math.isfinite(score)):
            raise ValueError(f"score must be finite and only given for status 'ok'; got {score!r} for {status!r}")
        with self.transaction():
            cursor = self.conn.execute(
                "UPDATE evaluations SET status = ?, reason = ?, metrics = ?, score = ?, log = ?, duration_s = ?,"
                " environment = ?, finished_at = ? WHERE id = ? AND status = ?",
                [status, reason, to_json(metrics), score, log, duration_s, to_json(environment), now(), eval_id,
                 RUNNING],
            )
            if cursor.rowcount != 1:
                current = self.evaluation(eval_id).status
                raise ValueError(f"evaluation {eval_id} must be 'running' to finish; it is {current!r}")

    def abandon_inflight(self, run_id: int) -> int:
        """Mark the run's evaluations still "running" (their process died) "interrupted"; returns how many."""
        with self.transaction():
            return self.conn.execute(
                "UPDATE evaluations SET status = ?, reason = 'the process ended before the evaluation did',"
                " finished_at = ? WHERE run_id = ? AND status = ?",
                [INTERRUPTED, now(), run_id, RUNNING],
            ).rowcount

    def spent(self, run_id: int, purpose: str = "search") -> int:
        """Finished evaluations of `purpose` in the run, failures included: what counts against the budget."""
        return self._rows(
            "SELECT count(*) AS n FROM evaluations WHERE run_id = ? AND purpose = ? AND status NOT IN (?, ?)",
            [run_id, purpose, RUNNING, INTERRUPTED],
        )[0]["n"]

    def evaluation(self, eval_id: int) -> Evaluation:
        return self._one(Evaluation, "evaluations", eval_id)

    def evaluations_at(self, tier: str, tier_version: int, status: str | None = None) -> list[Evaluation]:
        """Every evaluation at one tier and version (optionally of one status), oldest first."""
        rows = self._rows(
            "SELECT * FROM evaluations WHERE tier = ? AND tier_version = ? AND (? IS NULL OR status = ?) ORDER BY id",
            [tier, tier_version, status, status],
        )
        return [Evaluation.from_row(r) for r in rows]

    def set_scores(self, scores: Mapping[int, float | None]) -> None:
        """Replace the scores of ok evaluations in one transaction (scores are relative to references,
        so they change when references do)."""
        for eval_id, value in scores.items():
            if value is not None and not math.isfinite(value):
                raise ValueError(f"score must be finite; got {value!r} for evaluation {eval_id}")
        with self.transaction():
            self.conn.executemany("UPDATE evaluations SET score = ? WHERE id = ? AND status = 'ok'",
                                  [(value, eval_id) for eval_id, value in scores.items()])

    def evaluations(self, design_id: int) -> list[Evaluation]:
        rows = self._rows("SELECT * FROM evaluations WHERE design_id = ? ORDER BY id", [design_id])
        return [Evaluation.from_row(r) for r in rows]

    def top(self, tier: str, k: int, tier_version: int | None = None) -> list[tuple[Design, Evaluation]]:
        """The k best designs at `tier`, each with its best ok evaluation that may represent it (REPRESENTS), by
        score desc then design id."""
        rows = self._rows(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY design_id ORDER BY score DESC, id) AS rank"
            f"  FROM evaluations WHERE tier = :tier AND status = 'ok' AND score IS NOT NULL AND {REPRESENTS}"
            "  AND (:version IS NULL OR tier_version = :version))"
            " WHERE rank = 1 ORDER BY score DESC, design_id LIMIT :k",
            {"tier": tier, "version": tier_version, "k": k},
        )
        return [(self.design(r["design_id"]), Evaluation.from_row(r)) for r in rows]

    def seed_scores(self, tier: str, tier_version: int) -> dict[int, dict[int, Evaluation]]:
        """{design id: {seed: its first ok, scored evaluation that may represent it}} at one tier and version."""
        rows = self._rows(
            f"SELECT * FROM evaluations WHERE tier = ? AND tier_version = ? AND status = 'ok' AND score IS NOT NULL"
            f" AND {REPRESENTS} ORDER BY id", [tier, tier_version])
        table: dict[int, dict[int, Evaluation]] = {}
        for row in rows:
            table.setdefault(row["design_id"], {}).setdefault(row["seed"], Evaluation.from_row(row))
        return table

    def twins(self, tier: str, tier_version: int) -> dict[int, int]:
        """{design: the design it trains exactly as} at one tier and version, for every design that is a twin
        and not its group's original (``memory.twins``), from its ok evaluations that may represent it."""
        rows = self._rows(
            "SELECT e.design_id, e.seed, e.metrics, d.origin FROM evaluations e JOIN designs d ON d.id = e.design_id"
            f" WHERE e.tier = ? AND e.tier_version = ? AND e.status = 'ok' AND e.{REPRESENTS} ORDER BY e.id",
            [tier, tier_version])
        found = Twins()
        for row in rows:
            found.add(row["design_id"], row["seed"], json.loads(row["metrics"] or "{}"), row["origin"] == "baseline")
        return found.of()

    def ranked(self, tier: str, k: int, tier_version: int, twins: Mapping[int, int] | None = None) -> list[Ranked]:
        """The k best designs at one tier and version by the mean score over their seeds (one evaluation per
        seed), each with its best-scored evaluation for its metrics; ties by more seeds, then design id.
        Twins (``twins``, read here unless the caller has them) are left out: their originals stand for them."""
        twins = self.twins(tier, tier_version) if twins is None else twins
        rows = []
        for design_id, by_seed in self.seed_scores(tier, tier_version).items():
            if design_id in twins:
                continue
            best = max(by_seed.values(), key=lambda e: (e.score, -e.id))
            rows.append((design_id, best, tuple(by_seed.values())))
        rows.sort(key=lambda r: (-mean(e.score for e in r[2]), -len(r[2]), r[0]))
        return [Ranked(self.design(d), best, seeds) for d, best, seeds in rows[:k]]

    def references(self, tier: str, tier_version: int) -> dict[str, list[dict]]:
        """The yardstick at this tier and version: each baseline's metrics from its seeding evaluations
        (ok ones), by baseline name; a baseline never seeded here falls back to its verifications.

        Replays never count, and neither do a seeded baseline's verifications: extra seeds landing
        would otherwise move every score after them."""
        rows = self._rows(
            "SELECT d.name, e.purpose, e.metrics FROM evaluations e JOIN designs d ON d.id = e.design_id"
            " WHERE d.origin = 'baseline' AND e.purpose IN ('seed', 'verify') AND e.tier = ?"
            " AND e.tier_version = ? AND e.status = 'ok' ORDER BY d.name, e.id",
            [tier, tier_version],
        )
        by_purpose: dict[str, dict[str, list[dict]]] = {}
        for row in rows:
            by_purpose.setdefault(row["name"], {}).setdefault(row["purpose"], []).append(
                json.loads(row["metrics"] or "{}"))
        return {name: found.get("seed") or found["verify"] for name, found in by_purpose.items()}

    def lineage(self, design_id: int) -> list[Design]:
        """Ancestors along first parents, nearest first, up to a root (the design itself excluded)."""
        ancestors = []
        design = self.design(design_id)
        while design.parents:
            design = self.design(design.parents[0])
            ancestors.append(design)
        return ancestors

    def children(self, design_id: int) -> list[Design]:
        return self._designs_in(
            "SELECT DISTINCT d.* FROM designs d, json_each(d.parents) p WHERE p.value = ? ORDER BY d.id",
            [design_id],
        )

    def siblings(self, design_id: int) -> list[Design]:
        """Other designs that share a parent with this one (roots have none)."""
        parents = json.dumps(list(self.design(design_id).parents))
        return self._designs_in(
            "SELECT DISTINCT d.* FROM designs d, json_each(d.parents) p"
            " WHERE p.value IN (SELECT value FROM json_each(?)) AND d.id != ? ORDER BY d.id",
            [parents, design_id],
        )

    def add_analysis(
        self, design_id: int, author: str, text: str, data: Mapping[str, Any] | None = None,
        evaluation_id: int | None = None,
    ) -> int:
        return self._insert("analyses", {
            "design_id": design_id, "evaluation_id": evaluation_id, "author": author, "text": text,
            "data": to_json(data), "created_at": now(),
        })

    def analyses(self, design_id: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM analyses WHERE design_id = ? ORDER BY id", [design_id])
        return [{**r, "data": json.loads(r["data"]) if r["data"] else None} for r in rows]

    def log_event(self, run_id: int | None, kind: str, data: Mapping[str, Any] | None = None) -> int:
        return self._insert("events", {"run_id": run_id, "ts": now(), "kind": kind, "data": to_json(data)})

    def events(self, run_id: int, after_id: int = 0) -> list[Event]:
        """The run's events with id > after_id, oldest first: poll with the last id seen."""
        rows = self._rows("SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", [run_id, after_id])
        return [Event.from_row(r) for r in rows]
