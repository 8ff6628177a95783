"""The experience database's schema: the tables, and the migrations that build them.

The schema version lives in `PRAGMA user_version`; opening a file applies the migrations it lacks.
Migrations are append only: a file written by older code is upgraded, never rewritten.
"""

import sqlite3
from collections.abc import Callable, Sequence

from sqlite_utils import Database


class SchemaError(RuntimeError):
    """The file's schema version is not the one this code reads."""


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

