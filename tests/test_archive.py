import pytest

from memory.archive import AUTHOR, ArchiveConflict, DesignArchive

ROOT = '"""Linear\n\nA linear mixer."""\nscale = 1.0\n'
CHILD = ROOT.replace("scale = 1.0", "scale = 0.5")
OTHER = ROOT.replace("Linear", "Gated")


@pytest.fixture
def archive(tmp_path):
    with DesignArchive(tmp_path / "archive") as design_archive:
        yield design_archive


def test_design_round_trips_as_a_root_commit(archive):
    sha = archive.commit(1, "linear", ROOT, [], "linear: baseline")
    commit = archive.repo.commit(sha)
    assert archive.code(sha) == ROOT
    assert commit.parents == ()
    assert commit.message == "linear: baseline"
    assert (commit.author.name, commit.committer.email) == (AUTHOR.name, AUTHOR.email)
    assert commit.tree["card.md"].data_stream.read().decode() == "# linear\n\ndesign id: 1\n"
    assert archive.ref(1) == sha
    assert archive.ref(2) is None


def test_git_parents_are_the_parent_designs(archive):
    root = archive.commit(1, "linear", ROOT, [], "root")
    other = archive.commit(2, "gated", OTHER, [], "other root")
    child = archive.commit(3, "half", CHILD, [root], "child")
    cross = archive.commit(4, "cross", CHILD + "gate = True\n", [child, other], "crossover")
    assert [p.hexsha for p in archive.repo.commit(child).parents] == [root]
    assert [p.hexsha for p in archive.repo.commit(cross).parents] == [child, other]
    assert archive.log(cross) == [(cross, "crossover"), (child, "child"), (root, "root")]


def test_diff_shows_the_change(archive):
    root = archive.commit(1, "linear", ROOT, [], "root")
    child = archive.commit(2, "half", CHILD, [root], "child")
    diff = archive.diff(root, child)
    assert "-scale = 1.0\n+scale = 0.5" in diff
    assert "card.md" not in diff


def test_commit_is_idempotent_per_design_id(archive):
    root = archive.commit(1, "linear", ROOT, [], "root")
    assert archive.commit(1, "linear", ROOT, [], "root, committed again after a resume") == root
    with pytest.raises(ArchiveConflict, match="design 1 is archived as"):
        archive.commit(1, "linear", CHILD, [], "root")


def test_unknown_parent_is_refused(archive):
    with pytest.raises(ValueError, match="is not a commit in the archive"):
        archive.commit(1, "orphan", ROOT, ["0" * 40], "orphan")


def test_archive_is_a_valid_bare_repository_without_working_tree_or_index(tmp_path):
    path = tmp_path / "archive"
    with DesignArchive(path) as archive:
        root = archive.commit(1, "linear", ROOT, [], "root")
        archive.commit(2, "half", CHILD, [root], "child")
        assert archive.repo.bare
        assert archive.repo.git.fsck("--strict") == ""
        assert archive.repo.git.log("--format=%s", "refs/designs/2").splitlines() == ["child", "root"]
    assert not (path / "index").exists() and not (path / "design.py").exists()
    with DesignArchive(path) as reopened:
        assert reopened.code(reopened.ref(1)) == ROOT
