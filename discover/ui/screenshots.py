"""SVG screenshots of the UI: the leaderboard and a design view (its overview tab), at 80x24 and 200x60.

    python -m discover.ui.screenshots docs/screenshots [--workspace DIR]

Without --workspace it builds a synthetic workspace (see ``discover.ui.demo``) in a temporary folder,
so the pictures are the same on every machine apart from timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from discover.ui.app import DiscoverApp
from discover.ui.demo import build_demo_workspace
from discover.ui.leaderboard import LeaderboardScreen

SIZES = ((80, 24), (200, 60))


async def _shoot(workspace: Path, out: Path, size: tuple[int, int]) -> list[Path]:
    app = DiscoverApp(workspace, poll_s=3600)
    app.title = "discover runs"  # not the temporary folder's name
    name = f"{size[0]}x{size[1]}"
    paths = []
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        if not isinstance(app.screen, LeaderboardScreen):
            raise RuntimeError(f"the UI should open on the leaderboard; it shows {type(app.screen).__name__}")
        paths.append(Path(app.save_screenshot(f"leaderboard-{name}.svg", str(out))))
        board = app.screen
        searched = [i for i, row in enumerate(board.rows) if row["parents"]]  # the best design with a parent
        board.query_one("#board").move_cursor(row=searched[0] if searched else 0)
        await pilot.press("enter")
        await pilot.pause()
        paths.append(Path(app.save_screenshot(f"design-{name}.svg", str(out))))
    return paths


def save_screenshots(out: str | Path, workspace: str | Path | None = None) -> list[Path]:
    """Write the screenshots into `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if workspace is None:
            workspace = Path(tmp) / "workspace"
            build_demo_workspace(workspace, designs=120, live=False)
        return [path for size in SIZES for path in asyncio.run(_shoot(Path(workspace), out, size))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the SVG files")
    parser.add_argument("--workspace", default=None, help="workspace to show (default: a synthetic one)")
    args = parser.parse_args(argv)
    for path in save_screenshots(args.out, args.workspace):
        print(path)


if __name__ == "__main__":
    main()
