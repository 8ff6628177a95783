"""Where a workspace keeps things, and a command's session over them (its store, archive and executor)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NO_DATABASE = "no experience database in {}; run `discover run` or `discover seed`"


class WorkspaceError(LookupError):
    """The workspace's store cannot be opened as asked: it is missing, or of another schema version."""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def open(cls, path: str | Path) -> Workspace:
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    @property
    def db_path(self) -> Path:
        return self.root / "experience.db"

    @property
    def archive_path(self) -> Path:
        return self.root / "archive"

    @property
    def logs(self) -> Path:
        path = self.root / "logs"
        path.mkdir(exist_ok=True)
        return path


def unprotected(executor) -> list[str]:
    """The protections a job of ``executor``'s sandbox runs without on this machine (one trivial job asks)."""
    import sandbox

    box = getattr(executor, "sandbox", None)
    if box is None:  # a remote executor: each result records its own
        return []
    return sandbox.missing_protections(box.run(sandbox.Job("sandbox:child_info", {}, sandbox.Limits(wall_s=60)))
                                       .isolation)


def protection_warning(missing: list[str]) -> str:
    return ("warning: on this machine the sandbox runs designs without " + "; ".join(missing) +
            ". Results record it (environment.missing_protections); see the README's threat model.")


class Session:
    """What a command opened in a workspace (see ``discover.cli.opened``): its store and, when it evaluates many
    designs, an executor.

    The archive and the executor are made on first use, so a command pays only for what it touches.
    """

    def __init__(self, workers: int | None = None, warn=None):
        self.workers = workers
        self.warn = warn or (lambda message: None)  # told, once, what the sandbox cannot protect against
        self.workspace = self.db = self._archive = self._executor = None

    def open_store(self, workspace: str | Path, store: str) -> None:
        """store: "read" or "write" (an existing database, read-only or writable), "create" (the workspace is
        made when missing). A missing database, or one of another schema version, is a WorkspaceError."""
        from memory import ExperienceDB, SchemaError

        self.workspace = Workspace.open(workspace) if store == "create" else Workspace(Path(workspace))
        if store != "create" and not self.workspace.db_path.exists():
            raise WorkspaceError(NO_DATABASE.format(workspace))
        try:
            self.db = ExperienceDB(self.workspace.db_path, readonly=store == "read")
        except SchemaError as exc:
            raise WorkspaceError(str(exc)) from exc

    @property
    def archive(self):
        if self._archive is None:
            from memory import DesignArchive

            self._archive = DesignArchive(self.workspace.archive_path)
        return self._archive

    @property
    def recorder(self):
        """The recording service over this workspace's store and archive."""
        from memory.recorder import Recorder

        return Recorder(self.db.records, self.archive, self.db.heldout_key)

    @property
    def executor(self):
        """A local evaluation executor with ``workers`` workers (0 or None: one per core)."""
        if self._executor is None:
            import evaluator

            self._executor = evaluator.make_executor("local", workers=self.workers or None)
            if missing := unprotected(self._executor):
                self.warn(protection_warning(missing))
        return self._executor

    def close(self) -> None:
        """End what the command started: the executor's jobs that an error or an interrupt left running
        (its shutdown would wait for them), the executor, then the store."""
        if self._executor is not None:
            self._executor.cancel_all()
            self._executor.shutdown()
        for resource in (self._archive, self.db):
            if resource is not None:
                resource.close()
