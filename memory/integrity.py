"""Consistency of a workspace's experience database and design archive, as a list of problems.

What must hold however often a run was killed and resumed:

- no evaluation is left ``running`` once no run is running;
- each design has at most one finished search evaluation per (tier, version, seed): nothing was
  evaluated twice, and a run's finished search evaluations never exceed its budget;
- every design has its archive commit, the commit holds exactly the design's code, its git
  parents are its parent designs' commits, and ``refs/designs/<id>`` points at it;
- every duplicate points at a recorded design.

``audit`` reads only; an empty list means the workspace is consistent.
"""

from __future__ import annotations

from collections import Counter

from memory.archive import DesignArchive
from memory.db import ExperienceDB

UNFINISHED = ("running", "interrupted")


def audit(db: ExperienceDB, archive: DesignArchive) -> list[str]:
    problems: list[str] = []
    runs = {run.id: run for run in _runs(db)}
    if not any(run.status == "running" for run in runs.values()):
        running = db.conn.execute("SELECT id FROM evaluations WHERE status = 'running'").fetchall()
        problems += [f"evaluation {row[0]} is still running, but no run is" for row in running]
    designs = {design.id: design for design in db.records.designs()}
    searched: Counter = Counter()
    spent: Counter = Counter()
    for design_id in designs:
        for evaluation in db.records.evaluations(design_id):
            if evaluation.purpose == "search" and evaluation.status not in UNFINISHED:
                searched[(design_id, evaluation.tier, evaluation.tier_version, evaluation.seed)] += 1
                spent[evaluation.run_id] += 1
    problems += [f"design {key[0]} has {n} finished search evaluations at {key[1]}@v{key[2]} seed {key[3]}"
                 for key, n in searched.items() if n > 1]
    for run_id, n in spent.items():
        budget = runs[run_id].budget if run_id in runs else None
        if budget is not None and n > budget:
            problems.append(f"run {run_id} spent {n} evaluations of a budget of {budget}")
    for design in designs.values():
        problems += _archive_problems(design, designs, archive)
    for duplicate in db.records.duplicates():
        if duplicate["original_id"] not in designs:
            problems.append(f"duplicate {duplicate['id']} points at missing design {duplicate['original_id']}")
    return problems


def _runs(db: ExperienceDB) -> list:
    ids = [row[0] for row in db.conn.execute("SELECT id FROM runs ORDER BY id")]
    return [db.records.run(run_id) for run_id in ids]


def _archive_problems(design, designs: dict, archive: DesignArchive) -> list[str]:
    sha = design.archive_commit
    if not sha:
        return [f"design {design.id} has no archive commit"]
    try:
        code = archive.code(sha)
    except (KeyError, ValueError, OSError) as exc:
        return [f"design {design.id}: archive commit {sha} unreadable ({exc})"]
    problems = []
    if code != design.code:
        problems.append(f"design {design.id}: archived code differs from the recorded code")
    if archive.ref(design.id) != sha:
        problems.append(f"design {design.id}: refs/designs/{design.id} does not point at {sha}")
    expected = [designs[p].archive_commit for p in design.parents if p in designs and designs[p].archive_commit]
    actual = archive.parents(sha)
    if actual != expected:
        problems.append(f"design {design.id}: archive parents {actual} are not its parent designs' {expected}")
    return problems
