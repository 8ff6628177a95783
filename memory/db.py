"""The experience database: every run, design, evaluation, analysis and LLM call, in one SQLite file.

Only the loop writes (`ExperienceDB(path)`); the UI and other readers open the file read-only
(`ExperienceDB(path, readonly=True)`). The file is in WAL mode, so readers see the last committed
state and never wait for the writer. Every state change is one `BEGIN IMMEDIATE` transaction, so a
killed process loses at most the evaluation in flight (see `memory.records`).

The file's tables are read and written through four stores over its one connection:

    db.records     runs, designs, evaluations, analyses, events    (memory.records)
    db.journal     LLM calls, transcripts and the reply cache       (memory.journal)
    db.provenance  replays and verifications                        (memory.provenance)
    db.views       the UI's pages and the context's incremental reads (memory.views)

Opening a file applies the schema migrations it lacks (`memory.schema`).
"""

import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from memory.journal import JournalStore
from memory.provenance import ProvenanceStore
from memory.records import (
    DUPLICATE_KINDS,
    ORIGINS,
    PURPOSES,
    RUN_ENDINGS,
    DuplicateDesignError,
    RecordNotFound,
    RecordStore,
)
from memory.schema import SCHEMA_VERSION, SchemaError, migrate, schema_version
from memory.store import INTERRUPTED, RUNNING, Store
from memory.views import ReadModels

__all__ = [
    "DUPLICATE_KINDS",
    "INTERRUPTED",
    "ORIGINS",
    "PURPOSES",
    "RUNNING",
    "RUN_ENDINGS",
    "DuplicateDesignError",
    "ExperienceDB",
    "RecordNotFound",
    "SchemaError",
]

class ExperienceDB(Store):
    """The experience database at `path`; the writer creates and migrates it, readers only read.

    `transaction()` on the database or on any of its stores opens one transaction over all of them.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        super().__init__(_open_reader(self.path) if readonly else _open_writer(self.path))
        self.records = RecordStore(self.db)
        self.journal = JournalStore(self.db)
        self.provenance = ProvenanceStore(self.db)
        self.views = ReadModels(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ExperienceDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def heldout_key(self) -> bytes:
        """The workspace's secret for held-out draws (``evaluator.measure``), made on first use.

        Evaluations in one workspace share their held-out data, so a replay reproduces a result; the
        file sits beside the database, which a design's process cannot read. Never exported."""
        path = self.path.with_name(self.path.name + ".heldout-key")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32))
        return path.read_bytes()

    def data_version(self) -> int:
        """A number that changes whenever another connection commits: poll it to know when to read again."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]


def _open_writer(path: Path) -> Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(path, execute_plugins=False)
    db.enable_wal()
    # In WAL mode NORMAL survives a killed process; only an OS crash can lose the last commits.
    db.conn.execute("PRAGMA synchronous = NORMAL")
    db.conn.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def _open_reader(path: Path) -> Database:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    db = Database(sqlite3.connect(uri, uri=True), execute_plugins=False)
    if (version := schema_version(db.conn)) != SCHEMA_VERSION:
        db.close()
        raise SchemaError(f"{path} has schema version {version}; this code reads {SCHEMA_VERSION}")
    return db
