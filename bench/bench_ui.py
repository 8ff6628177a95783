"""How fast the terminal UI's first screen appears over a workspace of 10,000 designs.

    python bench/bench_ui.py [--designs 10000] [--repeats 5] [--workspace DIR]

Builds a synthetic workspace (``discover.ui.demo``; about 30 s for 10,000 designs, reused when
--workspace names one that exists), then times, in this process:

- the leaderboard query for the first page;
- the first screen: from creating the app to the leaderboard filled and drawn at 80x24 (median and
  worst of the repeats; the first repeat also pays for Textual's one-time set-up);
- a design view and a lineage tree opened from it.

It also times importing the UI in a fresh interpreter, and importing the command line, which loads
torch through the evaluator. The target is a first screen under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from discover.ui import DiscoverApp  # noqa: E402
from discover.ui.demo import TIER, TIER_VERSION, build_demo_workspace  # noqa: E402
from discover.ui.design import DesignScreen  # noqa: E402
from discover.ui.leaderboard import PAGE, LeaderboardScreen  # noqa: E402
from discover.ui.lineage import LineageScreen  # noqa: E402
from memory import ExperienceDB  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


async def first_screen(workspace: Path) -> tuple[float, int]:
    """Seconds from creating the app to the first leaderboard page on screen, and the rows shown."""
    start = time.perf_counter()
    app = DiscoverApp(workspace, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        elapsed = time.perf_counter() - start
        screen = app.screen
        if not isinstance(screen, LeaderboardScreen) or not screen.rows:
            raise RuntimeError("the first screen is not a filled leaderboard")
        return elapsed, len(screen.rows)


async def design_and_lineage(workspace: Path) -> tuple[float, float]:
    app = DiscoverApp(workspace, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        start = time.perf_counter()
        await pilot.press("enter")
        await pilot.pause()
        design = time.perf_counter() - start
        if not isinstance(app.screen, DesignScreen):
            raise RuntimeError("enter did not open the design view")
        start = time.perf_counter()
        await pilot.press("a")
        await pilot.pause()
        lineage = time.perf_counter() - start
        if not isinstance(app.screen, LineageScreen):
            raise RuntimeError("a did not open the lineage tree")
        return design, lineage


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workspace", default=None, help="reuse (or create) this workspace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(args.workspace or Path(tmp) / "workspace")
        if not (workspace / "experience.db").exists():
            start = time.perf_counter()
            build_demo_workspace(workspace, designs=args.designs)
            print(f"built a workspace of {args.designs} designs in {time.perf_counter() - start:.1f} s")
        with ExperienceDB(workspace / "experience.db", readonly=True) as db:
            designs = db.conn.execute("SELECT count(*) FROM designs").fetchone()[0]
            start = time.perf_counter()
            db.views.leaderboard_page(TIER, TIER_VERSION, limit=PAGE)
            query = time.perf_counter() - start
        print(f"workspace: {designs} designs")
        print(f"leaderboard query, first page of {PAGE}: {query * 1e3:.1f} ms")
        times = []
        for _ in range(args.repeats):
            seconds, rows = asyncio.run(first_screen(workspace))
            times.append(seconds)
        print(f"first screen (80x24, {rows} rows): median {statistics.median(times) * 1e3:.0f} ms, "
              f"worst {max(times) * 1e3:.0f} ms over {args.repeats} runs "
              f"({'under' if max(times) < 1 else 'OVER'} the 1 s target)")
        design, lineage = asyncio.run(design_and_lineage(workspace))
        print(f"design view opened in {design * 1e3:.0f} ms; lineage tree in {lineage * 1e3:.0f} ms")
    print(f"import discover.ui in a fresh interpreter: {import_seconds('discover.ui') * 1e3:.0f} ms")
    print(f"import discover.cli (loads torch through the evaluator): {import_seconds('discover.cli') * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
