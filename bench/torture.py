"""Crash torture: SIGKILL `discover run` at random moments, resume each time, then audit the workspace.

    python bench/torture.py [--kills 20] [--budget 12] [--tier full-tiny] [--workers 2] [--seed 0] [--out DIR]

The runner is killed at a random moment between 0.3 s and --max-delay seconds after each start
(or resume), --kills times, then resumed once more to completion. It prints every kill with what
the database held at that moment, and at the end the audit of memory.integrity (no evaluation
lost or repeated, budget spent exactly, archive and database consistent). Exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory import DesignArchive, ExperienceDB  # noqa: E402
from memory.integrity import audit  # noqa: E402

REFERENCES = ["linear_attention", "deltanet"]  # two references keep seeding short at any tier


def search_rows(db_path: Path) -> list[tuple[int, str]]:
    """(design_id, status) of every search evaluation, read without disturbing the writer."""
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT design_id, status FROM evaluations WHERE purpose = 'search' "
                                "ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema may not exist yet
        return []


def torture(workspace: Path, *, kills: int, budget: int, tier: str, workers: int, seed: int,
            max_delay: float = 15.0, log=print) -> tuple[int, list[str]]:
    """Kill and resume ``kills`` times, finish the run, and return (kills done, problems found)."""
    rng = random.Random(seed)
    config = workspace.parent / f"{workspace.name}-refs.toml"
    config.write_text("references = [" + ", ".join(f'"{name}"' for name in REFERENCES) + "]\n")
    command = [sys.executable, "-m", "discover.cli", "run", "--budget", str(budget), "--tier", tier,
               "--workspace", str(workspace), "--workers", str(workers), "--seed", str(seed),
               "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    db_path = workspace / "experience.db"
    done = 0
    while done < kills:
        resume = ["--resume"] if db_path.exists() else []
        runner = subprocess.Popen(command + resume, cwd=workspace.parent, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(0.3, max_delay)
        try:
            runner.wait(delay)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)  # the runner and its sandbox children, like a power cut
            runner.wait()
            done += 1
            rows = search_rows(db_path)
            finished = sum(1 for _, status in rows if status not in ("running", "interrupted"))
            log(f"kill {done:>3} after {delay:4.1f}s: {finished}/{budget} evaluations finished, "
                f"{sum(1 for _, s in rows if s == 'running')} in flight")
            continue
        if runner.returncode != 0:
            return done, [f"the runner exited with {runner.returncode} before being killed"]
        log(f"the run finished its budget before kill {done + 1} (raise --budget for more kills)")
        break
    final = subprocess.run(command + ["--resume"], cwd=workspace.parent, env=env, capture_output=True, text=True,
                           timeout=3600)
    if final.returncode != 0:
        return done, [f"the final resume exited with {final.returncode}: {final.stderr[-2000:]}"]
    with ExperienceDB(db_path, readonly=True) as db, DesignArchive(workspace / "archive") as archive:
        problems = audit(db, archive)
        run = db.records.latest_run()
        spent = db.records.spent(run.id)
        if spent != budget:
            problems.append(f"run {run.id} spent {spent} evaluations, budget {budget}")
    return done, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--tier", default="full-tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=15.0, help="latest kill, in seconds after a start")
    parser.add_argument("--out", default=None, help="keep the workspace here (default: a temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="discover-torture-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    kills, problems = torture(out / "ws", kills=args.kills, budget=args.budget, tier=args.tier,
                              workers=args.workers, seed=args.seed, max_delay=args.max_delay)
    print(f"\n{kills} kills survived in {time.perf_counter() - started:.0f}s; workspace {out / 'ws'}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("integrity: intact" if not problems else f"integrity: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
