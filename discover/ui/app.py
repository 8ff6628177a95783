"""The Textual application: opens the database read-only, starts on the leaderboard, polls for changes.

Screens open a design or a lineage through the app (``open_design``, ``open_lineage``), so no screen
imports another: the app is the one place that knows every screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from textual.app import App
from textual.binding import Binding

from discover.inspect import open_db
from discover.ui.design import DesignScreen
from discover.ui.help import HelpScreen
from discover.ui.leaderboard import LeaderboardScreen
from discover.ui.lineage import LineageScreen
from discover.ui.plot import PlotScreen
from discover.ui.runs import RunsScreen

POLL_S = 1.0


@runtime_checkable
class Refreshable(Protocol):
    def refresh_data(self) -> None:
        """Read the database again: another process has committed since the last read."""


class DiscoverApp(App[None]):
    """Runs, the leaderboard, designs, lineage and a live view of a run, over one workspace."""

    CSS_PATH = "discover.tcss"
    TITLE = "discover"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("question_mark", "help", "help"),
        Binding("r", "runs", "runs"),
        Binding("g", "plot", "plot"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, workspace: str | Path = "runs", poll_s: float = POLL_S):
        super().__init__()
        self.workspace = Path(workspace)
        self.title = f"discover {self.workspace}"
        self.db = open_db(self.workspace)
        self.poll_s = poll_s
        self.data_version = self.db.data_version()
        self.tier: tuple[str, int] | None = None  # the leaderboard's tier, which the plot follows

    def on_mount(self) -> None:
        self._describe_latest_run()
        self.push_screen(LeaderboardScreen())
        self.set_interval(self.poll_s, self.poll)

    def on_unmount(self) -> None:
        self.db.close()

    def poll(self) -> None:
        """Re-read only when another connection has committed (cheap: one PRAGMA)."""
        version = self.db.data_version()
        if version == self.data_version:
            return
        self.data_version = version
        self._describe_latest_run()
        if isinstance(self.screen, Refreshable):
            self.screen.refresh_data()

    def _describe_latest_run(self) -> None:
        run = self.db.records.latest_run()
        self.sub_title = "no runs yet" if run is None else (
            f"run {run.id} {run.status} {self.db.records.spent(run.id)}/{run.budget}")

    def open_design(self, design_id: int) -> None:
        self.push_screen(DesignScreen(design_id))

    def open_lineage(self, design_id: int) -> None:
        self.push_screen(LineageScreen(design_id))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_runs(self) -> None:
        if not isinstance(self.screen, RunsScreen):
            self.push_screen(RunsScreen())

    def action_plot(self) -> None:
        if self.tier is not None and not isinstance(self.screen, PlotScreen):
            self.push_screen(PlotScreen(*self.tier))
