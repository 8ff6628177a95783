"""The design archive: a bare git repository in which each design is one commit.

A design's commit has its parent designs' commits as git parents (none for a root, two for a
crossover) and a tree of `design.py` and a short `card.md`; `refs/designs/<id>` keeps it reachable.
So lineage is `git log` and a change is `git diff`, with the ordinary tools:

    git -C runs/archive log --graph --oneline --all
    git -C runs/archive diff refs/designs/3 refs/designs/12

Objects and refs are written directly (no working tree, no index), with an explicit author, so
nothing depends on the machine's git configuration.
"""

from io import BytesIO
from pathlib import Path

from git import Actor, Commit, Reference, Repo
from git.db import GitDB
from git.objects.fun import tree_to_stream
from gitdb import IStream
from gitdb.exc import ODBError

AUTHOR = Actor("discover", "discover@localhost")
_FILE_MODE = 0o100644


class ArchiveConflict(ValueError):
    """The design id is already archived with different content or parents."""


class DesignArchive:
    """The archive at `path`, created as a bare repository if the folder is missing or empty."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()):
            # GitDB reads objects in-process instead of keeping `git cat-file` children alive.
            self.repo = Repo(self.path, odbt=GitDB)
        else:
            self.repo = Repo.init(self.path, bare=True, odbt=GitDB)

    def close(self) -> None:
        self.repo.close()

    def __enter__(self) -> "DesignArchive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def commit(self, design_id: int, name: str, code: str, parents: list[str], message: str) -> str:
        """Archive a design as a commit on its parents' commits; returns its sha.

        Idempotent: archiving the same content and parents again under the same id returns the
        existing commit. Raises ArchiveConflict if the id is archived with something else, and
        ValueError if a parent is not a commit in this archive.
        """
        card = f"# {name}\n\ndesign id: {design_id}\n"
        tree = self._write_tree({"card.md": card, "design.py": code})
        parent_commits = [self._commit(sha) for sha in parents]
        existing = self.ref(design_id)
        if existing is not None:
            archived = self._commit(existing)
            if archived.tree.hexsha == tree and [p.hexsha for p in archived.parents] == list(parents):
                return existing
            raise ArchiveConflict(
                f"design {design_id} is archived as {existing} with other content or parents than this commit"
            )
        commit = Commit.create_from_tree(
            self.repo, tree, message, parent_commits=parent_commits, head=False, author=AUTHOR, committer=AUTHOR
        )
        Reference.create(self.repo, _ref_path(design_id), commit)
        return commit.hexsha

    def ref(self, design_id: int) -> str | None:
        """The sha archived for `design_id`, or None."""
        ref = Reference(self.repo, _ref_path(design_id))
        return ref.commit.hexsha if ref.is_valid() else None

    def code(self, sha: str) -> str:
        return self._commit(sha).tree["design.py"].data_stream.read().decode()

    def parents(self, sha: str) -> list[str]:
        """The git parents of a design's commit: its parent designs' commits, in order."""
        return [parent.hexsha for parent in self._commit(sha).parents]

    def log(self, sha: str) -> list[tuple[str, str]]:
        """(sha, message) from `sha` back to its root along first parents: the design's lineage."""
        commit = self._commit(sha)
        lineage = [(commit.hexsha, commit.message)]
        while commit.parents:
            commit = commit.parents[0]
            lineage.append((commit.hexsha, commit.message))
        return lineage

    def diff(self, sha_a: str, sha_b: str) -> str:
        """Unified `git diff` of design.py from `sha_a` to `sha_b`."""
        a, b = self._commit(sha_a).hexsha, self._commit(sha_b).hexsha
        return self.repo.git.diff("--no-color", "--no-ext-diff", a, b, "--", "design.py")

    def _commit(self, sha: str) -> Commit:
        try:
            commit = self.repo.commit(sha)
            # gitpython resolves the all-zero sha without looking, so check the object is really there.
            found = self.repo.odb.has_object(commit.binsha)
        except (ValueError, ODBError):
            found = False
        if not found:
            raise ValueError(f"{sha!r} is not a commit in the archive at {self.path}")
        return commit

    def _write_tree(self, files: dict[str, str]) -> str:
        entries = [
            (self._write_object("blob", text.encode()), _FILE_MODE, name) for name, text in sorted(files.items())
        ]
        stream = BytesIO()
        tree_to_stream(entries, stream.write)
        return self._write_object("tree", stream.getvalue()).hex()

    def _write_object(self, kind: str, data: bytes) -> bytes:
        return self.repo.odb.store(IStream(kind, len(data), BytesIO(data))).binsha


def _ref_path(design_id: int) -> str:
    return f"refs/designs/{int(design_id)}"
