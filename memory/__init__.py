"""Memory: the experience database and its stores, the design archive (git) and duplicate detection.

    from memory import ExperienceDB, DesignArchive, code_hash, structural_hash
    from memory import Records, Journal, Provenance, Views   # the stores' interfaces, for type hints

The names load their module on first use, so `import memory.dedup` does not pay for sqlite-utils
and gitpython.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "ExperienceDB": "memory.db",
    "Run": "memory.records",
    "Design": "memory.records",
    "Evaluation": "memory.records",
    "Event": "memory.records",
    "DuplicateDesignError": "memory.records",
    "RecordNotFound": "memory.records",
    "RecordStore": "memory.records",
    "JournalStore": "memory.journal",
    "ProvenanceStore": "memory.provenance",
    "ReadModels": "memory.views",
    "Records": "memory.protocols",
    "Journal": "memory.protocols",
    "Provenance": "memory.protocols",
    "Views": "memory.protocols",
    "SchemaError": "memory.schema",
    "DesignArchive": "memory.archive",
    "ArchiveConflict": "memory.archive",
    "code_hash": "memory.dedup",
    "normalize_whitespace": "memory.dedup",
    "structural_hash": "memory.dedup",
}

__all__ = [
    "ArchiveConflict",
    "Design",
    "DesignArchive",
    "DuplicateDesignError",
    "Evaluation",
    "Event",
    "ExperienceDB",
    "Journal",
    "JournalStore",
    "Provenance",
    "ProvenanceStore",
    "ReadModels",
    "RecordNotFound",
    "RecordStore",
    "Records",
    "Run",
    "SchemaError",
    "Views",
    "code_hash",
    "normalize_whitespace",
    "structural_hash",
]

if TYPE_CHECKING:
    from memory.archive import ArchiveConflict, DesignArchive
    from memory.db import ExperienceDB
    from memory.dedup import code_hash, normalize_whitespace, structural_hash
    from memory.journal import JournalStore
    from memory.protocols import Journal, Provenance, Records, Views
    from memory.provenance import ProvenanceStore
    from memory.records import Design, DuplicateDesignError, Evaluation, Event, RecordNotFound, RecordStore, Run
    from memory.schema import SchemaError
    from memory.views import ReadModels


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'memory' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
