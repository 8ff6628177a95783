"""The experience database: every run, design, evaluation, analysis and LLM call, in one SQLite file.

Only the loop writes (`ExperienceDB(path)`); the UI and other readers open the file read-only
(`ExperienceDB(path, readonly=True)`). The file is in WAL mode, so readers see the last committed
state and never wait for the writer. Every state change is one `BEGIN IMMEDIATE` transaction, so a
killed process loses at most the evaluation in flight: `abandon_inflight` marks it interrupted and
`spent` counts only finished evaluations, which makes `--resume` budget accounting exact.

The schema version lives in `PRAGMA user_version`; opening a file applies the migrations it lacks.
"""

import json
import math
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlite_utils import Database

from memory.dedup import code_hash, structural_hash

ORIGINS = ("baseline", "llm", "offline", "user")
PURPOSES = ("seed", "search", "replay", "verify")
RUN_ENDINGS = ("finished", "interrupted", "stopped")
DUPLICATE_KINDS = ("exact", "structural")
# Evaluation statuses besides "ok" and the named failures (syntax, nan, timeout, ...).
RUNNING, INTERRUPTED = "running", "interrupted"


class SchemaError(RuntimeError):
    """The file's schema version is not the one this code reads."""


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
class Event(_Record):
    id: int
    run_id: int | None
    ts: str
    kind: str
    data: dict | None
    _json: ClassVar = ("data",)


@dataclass(frozen=True)
class ChoiceStat:
    """How designs with `choice = value` fared at one tier: counts and the mean of their best scores."""

    choice: str
    value: Any
    n: int
    n_ok: int
    mean_score: float | None


def _v1_initial_schema(db: Database) -> None:
    text, integer, real = str, int, float
    db["runs"].create(
        {"id": integer, "started_at": text, "ended_at": text, "status": text, "budget": integer,
         "tier": text, "config": text, "workspace": text},
        pk="id", not_null={"started_at", "status", "tier", "config"}, strict=True,
    )
    db["designs"].create(
        {"id": integer, "name": text, "motivation": text, "code": text, "code_hash": text,
         "struct_hash": text, "origin": text, "parents": text, "archive_commit": text, "spec": text,
         "run_id": integer, "created_at": text},
        pk="id", not_null={"name", "motivation", "code", "code_hash", "origin", "parents", "created_at"},
        foreign_keys=[("run_id", "runs", "id")], strict=True,
    )
    db["designs"].create_index(["code_hash"], unique=True)
    db["designs"].create_index(["struct_hash"])
    db["duplicates"].create(
        {"id": integer, "run_id": integer, "code_hash": text, "struct_hash": text, "kind": text,
         "original_id": integer, "name": text, "origin": text, "code": text, "created_at": text},
        pk="id", not_null={"code_hash", "kind", "original_id", "code", "created_at"},
        foreign_keys=[("run_id", "runs", "id"), ("original_id", "designs", "id")], strict=True,
    )
    db["evaluations"].create(
        {"id": integer, "design_id": integer, "run_id": integer, "purpose": text, "tier": text,
         "tier_version": integer, "seed": integer, "status": text, "reason": text, "metrics": text,
         "score": real, "log": text, "duration_s": real, "environment": text, "created_at": text,
         "finished_at": text},
        pk="id", not_null={"design_id", "purpose", "tier", "tier_version", "seed", "status", "created_at"},
        foreign_keys=[("design_id", "designs", "id"), ("run_id", "runs", "id")], strict=True,
    )
    db["evaluations"].create_index(["design_id"])
    db["evaluations"].create_index(["run_id", "purpose", "status"])
    db["evaluations"].create_index(["tier", "tier_version", "status"])
    db["analyses"].create(
        {"id": integer, "design_id": integer, "evaluation_id": integer, "author": text, "text": text,
         "data": text, "created_at": text},
        pk="id", not_null={"design_id", "author", "text", "created_at"},
        foreign_keys=[("design_id", "designs", "id"), ("evaluation_id", "evaluations", "id")], strict=True,
    )
    db["analyses"].create_index(["design_id"])
    db["llm_calls"].create(
        {"id": integer, "run_id": integer, "design_id": integer, "role": text, "model": text,
         "prompt_tokens": integer, "completion_tokens": integer, "cost": real, "latency_s": real,
         "status": text, "request": text, "reply": text, "created_at": text},
        pk="id", not_null={"role", "model", "status", "created_at"},
        foreign_keys=[("run_id", "runs", "id"), ("design_id", "designs", "id")], strict=True,
    )
    db["llm_calls"].create_index(["run_id"])
    db["events"].create(
        {"id": integer, "run_id": integer, "ts": text, "kind": text, "data": text},
        pk="id", not_null={"ts", "kind"}, foreign_keys=[("run_id", "runs", "id")], strict=True,
    )
    db["events"].create_index(["run_id", "id"])


def _v2_llm(db: Database) -> None:
    """LLM transcripts: each call's HTTP attempt, error and cache key (calls link to their design once it is
    recorded), and the reply cache that lets a run be re-done without a model."""
    text, integer = str, int
    for column, kind in (("attempt", integer), ("error", text), ("cache_key", text), ("cached", integer)):
        db["llm_calls"].add_column(column, kind)
    db["llm_calls"].create_index(["design_id"])
    db["llm_cache"].create(
        {"key": text, "model": text, "reply": text, "prompt_tokens": integer, "completion_tokens": integer,
         "created_at": text},
        pk="key", not_null={"model", "reply", "created_at"}, strict=True,
    )


def _v3_provenance(db: Database) -> None:
    """Replays (a recorded evaluation run again and compared) and verifications (multi-seed verdicts
    of designs against references)."""
    text, integer, real = str, int, float
    db["replays"].create(
        {"id": integer, "design_id": integer, "evaluation_id": integer, "replay_evaluation_id": integer,
         "verdict": text, "exact": integer, "diffs": text, "environment": text, "created_at": text},
        pk="id", not_null={"design_id", "evaluation_id", "replay_evaluation_id", "verdict", "exact", "diffs",
                           "created_at"},
        foreign_keys=[("design_id", "designs", "id"), ("evaluation_id", "evaluations", "id"),
                      ("replay_evaluation_id", "evaluations", "id")], strict=True,
    )
    db["replays"].create_index(["design_id"])
    db["verifications"].create(
        {"id": integer, "tier": text, "tier_version": integer, "seeds": text, "confidence": real, "method": text,
         "created_at": text},
        pk="id", not_null={"tier", "tier_version", "seeds", "confidence", "method", "created_at"}, strict=True,
    )
    db["verdicts"].create(
        {"id": integer, "verification_id": integer, "design_id": integer, "reference": text,
         "reference_id": integer, "metric": text, "higher_is_better": integer, "n": integer, "mean": real,
         "std": real, "reference_n": integer, "reference_mean": real, "reference_std": real, "diff": real,
         "low": real, "high": real, "verdict": text},
        pk="id", not_null={"verification_id", "design_id", "reference", "reference_id", "metric", "verdict"},
        foreign_keys=[("verification_id", "verifications", "id"), ("design_id", "designs", "id"),
                      ("reference_id", "designs", "id")], strict=True,
    )
    db["verdicts"].create_index(["design_id", "verification_id"])


Migration = Callable[[Database], None]
# Append only: migration i takes a file from schema version i to i + 1.
MIGRATIONS: tuple[Migration, ...] = (_v1_initial_schema, _v2_llm, _v3_provenance)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the migrations the file lacks, each in its own transaction with its version bump.

    Returns the resulting schema version; raises SchemaError for a file newer than `migrations`.
    """
    while True:
        with db.conn:
            db.conn.execute("BEGIN IMMEDIATE")
            # Read inside the write lock, so two processes opening one file migrate it once.
            version = schema_version(db.conn)
            if version > len(migrations):
                raise SchemaError(f"schema version {version} is newer than this code's {len(migrations)}")
            if version == len(migrations):
                return version
            migrations[version](db)
            db.conn.execute(f"PRAGMA user_version = {version + 1}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")


class ExperienceDB:
    """The experience database at `path`; the writer creates and migrates it, readers only read."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self.db = Database(sqlite3.connect(uri, uri=True), execute_plugins=False)
            if (version := schema_version(self.conn)) != SCHEMA_VERSION:
                self.close()
                raise SchemaError(f"{path} has schema version {version}; this code reads {SCHEMA_VERSION}")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.path, execute_plugins=False)
        self.db.enable_wal()
        # In WAL mode NORMAL survives a killed process; only an OS crash can lose the last commits.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        migrate(self.db)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ExperienceDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change: committed when the block ends, rolled back if it raises. Nests."""
        if self.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            yield

    def _insert(self, table: str, record: dict[str, Any]) -> int:
        with self.transaction():
            return self.db[table].insert(record).last_pk

    def _rows(self, sql: str, params: Sequence | Mapping = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def _one(self, record: type, table: str, id_: int):
        rows = self._rows(f"SELECT * FROM {table} WHERE id = ?", [id_])
        if not rows:
            raise RecordNotFound(f"no {table[:-1]} with id {id_}")
        return record.from_row(rows[0])

    def start_run(self, budget: int | None, tier: str, config: Mapping[str, Any], workspace: str | None = None) -> int:
        return self._insert("runs", {
            "started_at": _now(), "ended_at": None, "status": RUNNING, "budget": budget, "tier": tier,
            "config": json.dumps(config), "workspace": workspace,
        })

    def finish_run(self, run_id: int, status: str) -> None:
        _check_choice("run status", status, RUN_ENDINGS)
        with self.transaction():
            self.db["runs"].update(run_id, {"status": status, "ended_at": _now()})

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
        _check_choice("origin", origin, ORIGINS)
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
                "archive_commit": archive_commit, "spec": _json(spec), "run_id": run_id, "created_at": _now(),
            }).last_pk

    def set_archive_commit(self, design_id: int, sha: str) -> None:
        with self.transaction():
            self.db["designs"].update(design_id, {"archive_commit": sha})

    def add_duplicate(
        self, run_id: int | None, code: str, kind: str, original_id: int, name: str, origin: str
    ) -> int:
        """Record a proposal that repeats design `original_id`; it costs no evaluation."""
        _check_choice("duplicate kind", kind, DUPLICATE_KINDS)
        _check_choice("origin", origin, ORIGINS)
        return self._insert("duplicates", {
            "run_id": run_id, "code_hash": code_hash(code), "struct_hash": structural_hash(code), "kind": kind,
            "original_id": original_id, "name": name, "origin": origin, "code": code, "created_at": _now(),
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
        _check_choice("purpose", purpose, PURPOSES)
        return self._insert("evaluations", {
            "design_id": design_id, "run_id": run_id, "purpose": purpose, "tier": tier,
            "tier_version": tier_version, "seed": seed, "status": RUNNING, "created_at": _now(),
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
                [status, reason, _json(metrics), score, log, duration_s, _json(environment), _now(), eval_id,
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
                [INTERRUPTED, _now(), run_id, RUNNING],
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
        """The k best designs at `tier`, each with its best ok evaluation, by score desc then design id."""
        rows = self._rows(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY design_id ORDER BY score DESC, id) AS rank"
            "  FROM evaluations WHERE tier = :tier AND status = 'ok' AND score IS NOT NULL"
            "  AND (:version IS NULL OR tier_version = :version))"
            " WHERE rank = 1 ORDER BY score DESC, design_id LIMIT :k",
            {"tier": tier, "version": tier_version, "k": k},
        )
        return [(self.design(r["design_id"]), Evaluation.from_row(r)) for r in rows]

    def references(self, tier: str, tier_version: int) -> dict[str, list[dict]]:
        """Metrics of every ok evaluation of each baseline at this tier and version, by baseline name."""
        rows = self._rows(
            "SELECT d.name, e.metrics FROM evaluations e JOIN designs d ON d.id = e.design_id"
            " WHERE d.origin = 'baseline' AND e.tier = ? AND e.tier_version = ? AND e.status = 'ok'"
            " ORDER BY d.name, e.id",
            [tier, tier_version],
        )
        references: dict[str, list[dict]] = {}
        for row in rows:
            references.setdefault(row["name"], []).append(json.loads(row["metrics"] or "{}"))
        return references

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

    def choice_stats(self, tier: str, tier_version: int | None = None) -> list[ChoiceStat]:
        """Per (choice, value) of designs with a spec: how many finished at `tier`, how many ok, mean best score."""
        rows = self._rows(
            "SELECT d.spec, max(CASE WHEN e.status = 'ok' THEN e.score END) AS best"
            " FROM designs d JOIN evaluations e ON e.design_id = d.id"
            " WHERE d.spec IS NOT NULL AND e.tier = :tier AND e.status NOT IN (:running, :interrupted)"
            " AND (:version IS NULL OR e.tier_version = :version) GROUP BY d.id",
            {"tier": tier, "version": tier_version, "running": RUNNING, "interrupted": INTERRUPTED},
        )
        groups: dict[tuple[str, str], list[float | None]] = {}
        for row in rows:
            for choice, value in json.loads(row["spec"]).items():
                groups.setdefault((choice, json.dumps(value, sort_keys=True)), []).append(row["best"])
        stats = []
        for (choice, value), best in sorted(groups.items()):
            scores = [s for s in best if s is not None]
            mean = sum(scores) / len(scores) if scores else None
            stats.append(ChoiceStat(choice, json.loads(value), len(best), len(scores), mean))
        return stats

    def add_analysis(
        self, design_id: int, author: str, text: str, data: Mapping[str, Any] | None = None,
        evaluation_id: int | None = None,
    ) -> int:
        return self._insert("analyses", {
            "design_id": design_id, "evaluation_id": evaluation_id, "author": author, "text": text,
            "data": _json(data), "created_at": _now(),
        })

    def analyses(self, design_id: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM analyses WHERE design_id = ? ORDER BY id", [design_id])
        return [{**r, "data": json.loads(r["data"]) if r["data"] else None} for r in rows]

    def add_llm_call(
        self,
        run_id: int | None,
        role: str,
        model: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cost: float | None = None,
        latency_s: float | None = None,
        status: str = "ok",
        request: Any = None,
        reply: str | None = None,
        design_id: int | None = None,
    ) -> int:
        """Record one LLM call; cost None means unknown (a model litellm has no price for)."""
        return self._insert("llm_calls", {
            "run_id": run_id, "design_id": design_id, "role": role, "model": model,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost": cost,
            "latency_s": latency_s, "status": status, "request": _json(request), "reply": reply,
            "created_at": _now(),
        })

    def llm_usage(self, run_id: int) -> dict[str, Any]:
        """Totals for the run: calls, tokens, known cost, and how many calls had an unknown cost."""
        return self._rows(
            "SELECT count(*) AS calls, coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
            " coalesce(sum(completion_tokens), 0) AS completion_tokens, coalesce(sum(cost), 0.0) AS cost,"
            " coalesce(sum(cost IS NULL), 0) AS unknown_cost_calls FROM llm_calls WHERE run_id = ?",
            [run_id],
        )[0]

    # LLM transcripts and cache. Every attempt at an LLM call is one llm_calls row (prompt, reply, status,
    # tokens, cost), linked to the design it produced once that design is recorded; every reply is also
    # cached under the hash of its request, so a run can be re-done from the cache without a model.

    LLM_CALL_FIELDS: ClassVar[tuple[str, ...]] = (
        "role", "model", "status", "request", "reply", "error", "prompt_tokens", "completion_tokens", "cost",
        "latency_s", "attempt", "cache_key", "cached", "design_id")

    def add_llm_transcript(self, run_id: int | None, call: Mapping[str, Any]) -> int:
        """Record one LLM call (keys LLM_CALL_FIELDS) and, when it has a reply and a cache key and was not
        itself served from the cache, cache the reply (the first reply for a key is kept); one transaction."""
        if unknown := sorted(set(call) - set(self.LLM_CALL_FIELDS)):
            raise ValueError(f"unknown LLM call field(s) {', '.join(unknown)}; "
                             f"known: {', '.join(self.LLM_CALL_FIELDS)}")
        row = {name: call.get(name) for name in self.LLM_CALL_FIELDS}
        row.update(run_id=run_id, request=_json(row["request"]), cached=int(bool(row["cached"])), created_at=_now())
        with self.transaction():
            call_id = self.db["llm_calls"].insert(row).last_pk
            if row["cache_key"] and row["reply"] is not None and not row["cached"]:
                self.conn.execute(
                    "INSERT OR IGNORE INTO llm_cache (key, model, reply, prompt_tokens, completion_tokens, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [row["cache_key"], row["model"], row["reply"], row["prompt_tokens"], row["completion_tokens"],
                     row["created_at"]])
        return call_id

    def link_llm_calls(self, call_ids: Sequence[int], design_id: int) -> int:
        """Link calls not yet linked to a design to `design_id`; returns how many were linked."""
        with self.transaction():
            return self.conn.execute(
                "UPDATE llm_calls SET design_id = ? WHERE design_id IS NULL AND id IN (SELECT value FROM json_each(?))",
                [design_id, json.dumps(list(call_ids))]).rowcount

    def llm_calls(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """The LLM calls (of one run, or all), oldest first, with the request decoded."""
        rows = self._rows("SELECT * FROM llm_calls WHERE ? IS NULL OR run_id = ? ORDER BY id", [run_id, run_id])
        return [{**r, "request": json.loads(r["request"]) if r["request"] else None} for r in rows]

    def cached_reply(self, key: str) -> dict[str, Any] | None:
        """The cached reply for a request hash: {"reply", "prompt_tokens", "completion_tokens", "model"}, or None."""
        rows = self._rows("SELECT model, reply, prompt_tokens, completion_tokens FROM llm_cache WHERE key = ?", [key])
        return rows[0] if rows else None

    def log_event(self, run_id: int | None, kind: str, data: Mapping[str, Any] | None = None) -> int:
        return self._insert("events", {"run_id": run_id, "ts": _now(), "kind": kind, "data": _json(data)})

    def events(self, run_id: int, after_id: int = 0) -> list[Event]:
        """The run's events with id > after_id, oldest first: poll with the last id seen."""
        rows = self._rows("SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", [run_id, after_id])
        return [Event.from_row(r) for r in rows]

    # Replays and verification verdicts. A replay runs a recorded evaluation again and says whether it
    # reproduced; a verification evaluates designs and references over several seeds and records one
    # verdict per (design, reference, metric). `show`, `top` and the UI read them through these methods.

    REPLAY_VERDICTS: ClassVar[tuple[str, ...]] = ("reproduced", "differs")
    VERDICTS: ClassVar[tuple[str, ...]] = ("better", "worse", "not-distinguishable", "insufficient")

    def add_replay(
        self, design_id: int, evaluation_id: int, replay_evaluation_id: int, verdict: str, exact: bool,
        diffs: Sequence[Mapping[str, Any]], environment: Mapping[str, Any] | None = None,
    ) -> int:
        """Record that `replay_evaluation_id` re-ran `evaluation_id`; `diffs` holds one entry per metric."""
        _check_choice("replay verdict", verdict, self.REPLAY_VERDICTS)
        return self._insert("replays", {
            "design_id": design_id, "evaluation_id": evaluation_id, "replay_evaluation_id": replay_evaluation_id,
            "verdict": verdict, "exact": int(bool(exact)), "diffs": json.dumps(list(diffs)),
            "environment": _json(environment), "created_at": _now(),
        })

    def replays(self, design_id: int) -> list[dict[str, Any]]:
        """The design's replays, oldest first, with diffs and environment changes decoded."""
        rows = self._rows("SELECT * FROM replays WHERE design_id = ? ORDER BY id", [design_id])
        return [{**r, "exact": bool(r["exact"]), "diffs": json.loads(r["diffs"]),
                 "environment": json.loads(r["environment"]) if r["environment"] else None} for r in rows]

    def latest_replay(self, design_id: int) -> dict[str, Any] | None:
        replays = self.replays(design_id)
        return replays[-1] if replays else None

    def add_verification(
        self, tier: str, tier_version: int, seeds: Sequence[int], confidence: float, method: str,
        verdicts: Sequence[Mapping[str, Any]],
    ) -> int:
        """Record one verification and its verdict rows (keys: the `verdicts` table's columns) atomically."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
        for row in verdicts:
            _check_choice("verdict", row["verdict"], self.VERDICTS)
        with self.transaction():
            verification_id = self.db["verifications"].insert({
                "tier": tier, "tier_version": tier_version, "seeds": json.dumps(list(seeds)),
                "confidence": confidence, "method": method, "created_at": _now(),
            }).last_pk
            self.db["verdicts"].insert_all(
                [{**row, "verification_id": verification_id, "higher_is_better": int(row["higher_is_better"])}
                 for row in verdicts])
        return verification_id

    def verdicts(self, design_id: int, tier: str | None = None) -> list[dict[str, Any]]:
        """Every verdict on the design (optionally at one tier), oldest verification first, each row with its
        verification's tier, tier_version, seeds, confidence, method and created_at."""
        rows = self._rows(
            "SELECT v.*, f.tier, f.tier_version, f.seeds, f.confidence, f.method, f.created_at"
            " FROM verdicts v JOIN verifications f ON f.id = v.verification_id"
            " WHERE v.design_id = ? AND (? IS NULL OR f.tier = ?) ORDER BY v.verification_id, v.id",
            [design_id, tier, tier],
        )
        return [{**r, "seeds": json.loads(r["seeds"]), "higher_is_better": bool(r["higher_is_better"])}
                for r in rows]

    def latest_verdict(self, design_id: int, tier: str | None = None) -> dict[str, Any] | None:
        """The design's most recent verification (optionally at one tier), or None if it was never verified.

        Keys: verification_id, tier, tier_version, seeds, confidence, method, created_at, `rows` (its verdict
        rows) and `headline`: the verdict on the score against the strongest reference compared (highest
        reference mean), the one line a leaderboard shows; None when no score was compared.
        """
        rows = self.verdicts(design_id, tier)
        if not rows:
            return None
        latest = [r for r in rows if r["verification_id"] == rows[-1]["verification_id"]]
        on_score = [r for r in latest if r["metric"] == "score" and r["reference_mean"] is not None]
        headline = max(on_score, key=lambda r: r["reference_mean"]) if on_score else None
        first = latest[0]
        keys = ("verification_id", "tier", "tier_version", "seeds", "confidence", "method", "created_at")
        return {**{k: first[k] for k in keys}, "rows": latest, "headline": headline}

    # Read queries for the UI: only the columns a screen shows, sorted and paged in SQL, so a screen
    # over 10,000 designs loads in milliseconds. A design's "representative" evaluation at a tier is
    # its best ok one (highest score), else its latest.

    LEADERBOARD_SORTS: ClassVar[dict[str, str]] = {
        "score": "r.score", "id": "r.design_id", "name": "d.name", "origin": "d.origin", "status": "r.status",
        "duration": "r.duration_s",
    }
    _REPRESENTATIVE = "row_number() OVER (PARTITION BY e.design_id ORDER BY e.status = 'ok' DESC, e.score IS NULL," \
                      " e.score DESC, e.id DESC)"

    def evaluated_tiers(self) -> list[dict[str, Any]]:
        """Each (tier, tier_version) that has evaluations, with their count; most recently used first."""
        return self._rows("SELECT tier, tier_version, count(*) AS n FROM evaluations GROUP BY tier, tier_version"
                          " ORDER BY max(id) DESC")

    def leaderboard_page(
        self, tier: str, tier_version: int, *, status: str | None = None, origin: str | None = None,
        sort: str = "score", descending: bool = True, limit: int = 50, offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of designs evaluated at a tier, each with its representative evaluation, and the row count
        over all pages.

        `status` None keeps every design, "failed" those whose representative evaluation is a named failure,
        any other value that status. `sort` is a key of LEADERBOARD_SORTS or a metric name; rows without a
        value sort last in either direction, ties by design id. Ranking, filtering and sorting read narrow
        columns only (designs are joined before the page is cut only to filter or sort by their columns);
        metrics and names are read for the rows of the page.
        """
        if sort in self.LEADERBOARD_SORTS:
            key, metric = self.LEADERBOARD_SORTS[sort], None
        elif sort.isidentifier():
            key, metric = "r.metric", f"$.{sort}"
        else:
            raise ValueError(f"sort must be one of {', '.join(self.LEADERBOARD_SORTS)} or a metric name; got {sort!r}")
        if limit < 1 or offset < 0:
            raise ValueError(f"limit must be >= 1 and offset >= 0; got limit {limit}, offset {offset}")
        params = {"tier": tier, "version": tier_version, "origin": origin, "status": status, "metric": metric,
                  "running": RUNNING, "interrupted": INTERRUPTED, "limit": limit, "offset": offset}
        by_design = origin is not None or key.startswith("d.")
        selected = (
            " FROM (SELECT e.id AS evaluation_id, e.design_id, e.status, e.score, e.duration_s,"
            f"  {'json_extract(e.metrics, :metric)' if metric else 'NULL'} AS metric, {self._REPRESENTATIVE} AS rank"
            "  FROM evaluations e WHERE e.tier = :tier AND e.tier_version = :version) r"
            + (" JOIN designs d ON d.id = r.design_id" if by_design else "") +
            " WHERE r.rank = 1" + (" AND d.origin = :origin" if origin is not None else "") +
            " AND (:status IS NULL OR r.status = :status"
            "  OR (:status = 'failed' AND r.status NOT IN ('ok', :running, :interrupted)))"
        )
        order = f"{key} IS NULL, {key} {'DESC' if descending else 'ASC'}, r.design_id"
        rows = self._rows(
            "SELECT d.id, d.name, d.origin, d.parents, d.run_id, e.id AS evaluation_id, e.status, e.reason, e.score,"
            " e.seed, e.metrics, e.duration_s, p.total"
            " FROM (SELECT r.evaluation_id, r.design_id, count(*) OVER () AS total,"
            f"  row_number() OVER (ORDER BY {order}) AS position {selected}"
            "  ORDER BY position LIMIT :limit OFFSET :offset) p"
            " JOIN designs d ON d.id = p.design_id JOIN evaluations e ON e.id = p.evaluation_id ORDER BY p.position",
            params,
        )
        if rows:
            total = rows[0]["total"]
        else:  # past the last page (or nothing matches): count without the page
            total = self._rows("SELECT count(*) AS n" + selected, params)[0]["n"] if offset else 0
        for row in rows:
            del row["total"]
            row["parents"] = json.loads(row["parents"])
            row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
        return rows, total

    def runs_overview(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its search evaluations spent, designs recorded and best score."""
        return self._rows(
            "SELECT r.id, r.started_at, r.ended_at, r.status, r.budget, r.tier,"
            " (SELECT count(*) FROM evaluations e WHERE e.run_id = r.id AND e.purpose = 'search'"
            "   AND e.status NOT IN (:running, :interrupted)) AS spent,"
            " (SELECT count(*) FROM designs d WHERE d.run_id = r.id) AS designs,"
            " (SELECT max(e.score) FROM evaluations e WHERE e.run_id = r.id AND e.purpose = 'search') AS best_score"
            " FROM runs r ORDER BY r.id DESC",
            {"running": RUNNING, "interrupted": INTERRUPTED},
        )

    def score_history(self, tier: str, tier_version: int, run_id: int | None = None) -> list[dict[str, Any]]:
        """Finished search evaluations at a tier (optionally of one run) in the order they finished:
        the data behind a best-score-so-far curve."""
        return self._rows(
            "SELECT id, design_id, run_id, status, score FROM evaluations"
            " WHERE tier = :tier AND tier_version = :version AND purpose = 'search'"
            " AND status NOT IN (:running, :interrupted) AND (:run IS NULL OR run_id = :run)"
            " ORDER BY finished_at, id",
            {"tier": tier, "version": tier_version, "run": run_id, "running": RUNNING, "interrupted": INTERRUPTED},
        )

    def design_summaries(self, design_ids: Sequence[int], tier: str | None = None,
                         tier_version: int | None = None) -> dict[int, dict[str, Any]]:
        """Name, origin, parents and the representative evaluation of each design (at `tier` and `tier_version`
        when given, else at any), without its code."""
        rows = self._rows(
            "SELECT d.id, d.name, d.origin, d.parents, d.run_id, r.tier, r.tier_version, r.status, r.score"
            " FROM designs d LEFT JOIN (SELECT e.id, e.design_id, e.tier, e.tier_version, e.status, e.score, "
            + self._REPRESENTATIVE + " AS rank FROM evaluations e"
            "  WHERE e.design_id IN (SELECT value FROM json_each(:ids))"
            "  AND (:tier IS NULL OR e.tier = :tier) AND (:version IS NULL OR e.tier_version = :version)) r"
            " ON r.design_id = d.id AND r.rank = 1"
            " WHERE d.id IN (SELECT value FROM json_each(:ids)) ORDER BY d.id",
            {"ids": json.dumps([int(i) for i in design_ids]), "tier": tier, "version": tier_version},
        )
        return {row["id"]: {**row, "parents": json.loads(row["parents"])} for row in rows}

    def child_ids(self, design_id: int) -> list[int]:
        """Designs that name `design_id` among their parents, oldest first."""
        return self.children_of([design_id]).get(design_id, [])

    def children_of(self, design_ids: Sequence[int]) -> dict[int, list[int]]:
        """The children of each of `design_ids` (oldest first; absent: none), read in one pass over the designs."""
        rows = self._rows(
            "SELECT DISTINCT p.value AS parent, d.id FROM designs d, json_each(d.parents) p"
            " WHERE p.value IN (SELECT value FROM json_each(?)) ORDER BY d.id",
            [json.dumps([int(i) for i in design_ids])],
        )
        children: dict[int, list[int]] = {}
        for row in rows:
            children.setdefault(row["parent"], []).append(row["id"])
        return children

    def statuses_at(self, tier: str, tier_version: int) -> list[str]:
        """The evaluation statuses that occur at a tier and version, alphabetically."""
        rows = self._rows("SELECT DISTINCT status FROM evaluations WHERE tier = ? AND tier_version = ? ORDER BY status",
                          [tier, tier_version])
        return [row["status"] for row in rows]

    def data_version(self) -> int:
        """A number that changes whenever another connection commits: poll it to know when to read again."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def design_llm_calls(self, design_id: int) -> list[dict[str, Any]]:
        """Every LLM call linked to the design, oldest first, prompt and reply included: its transcript."""
        rows = self._rows("SELECT * FROM llm_calls WHERE design_id = ? ORDER BY id", [design_id])
        return [{**r, "request": json.loads(r["request"]) if r["request"] else None} for r in rows]
