"""Memory: the experience database, the design archive (git) and duplicate detection.

    from memory import ExperienceDB, DesignArchive, code_hash, structural_hash

The names load their module on first use, so `import memory.dedup` does not pay for sqlite-utils
and gitpython.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "ExperienceDB": "memory.db",
    "Run": "memory.db",
    "Design": "memory.db",
    "Evaluation": "memory.db",
    "Event": "memory.db",
    "ChoiceStat": "memory.db",
    "DuplicateDesignError": "memory.db",
    "RecordNotFound": "memory.db",
    "SchemaError": "memory.db",
    "DesignArchive": "memory.archive",
    "ArchiveConflict": "memory.archive",
    "code_hash": "memory.dedup",
    "normalize_whitespace": "memory.dedup",
    "structural_hash": "memory.dedup",
}

__all__ = [
    "ArchiveConflict",
    "ChoiceStat",
    "Design",
    "DesignArchive",
    "DuplicateDesignError",
    "Evaluation",
    "Event",
    "ExperienceDB",
    "RecordNotFound",
    "Run",
    "SchemaError",
    "code_hash",
    "normalize_whitespace",
    "structural_hash",
]

if TYPE_CHECKING:
    from memory.archive import ArchiveConflict, DesignArchive
    from memory.db import (
        ChoiceStat,
        Design,
        DuplicateDesignError,
        Evaluation,
        Event,
        ExperienceDB,
        RecordNotFound,
        Run,
        SchemaError,
    )
    from memory.dedup import code_hash, normalize_whitespace, structural_hash


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'memory' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
