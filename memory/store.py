"""What every store of the experience database shares: one borrowed connection, its transactions, and
the encodings and statuses the tables use.

``ExperienceDB`` opens the connection; each store (``RecordStore``, ``JournalStore``, ``ProvenanceStore``,
``ReadModels``) is a ``Store`` over it, so a transaction opened on any of them spans them all.
"""

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

# Evaluation statuses besides "ok" and the named failures (syntax, nan, timeout, ...).
RUNNING, INTERRUPTED = "running", "interrupted"


def now() -> str:
    """The current time as stored in every timestamp column: ISO 8601 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def to_json(value: Any) -> str | None:
    """A JSON column's text; None stays NULL."""
    return None if value is None else json.dumps(value)


def check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")


class Store:
    """Queries over the connection `db`; only the `ExperienceDB` that opened it closes it."""

    def __init__(self, db: Database):
        self.db = db

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

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
