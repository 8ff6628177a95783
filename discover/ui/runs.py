"""Runs, and a live view of one run rebuilt from its events in the database.

The live view applies the run's events to the same ``RunState`` the live display of ``discover run``
uses, so both show the same progress, stage, event lines and best designs. It reads only the events
after the last one it has seen, whenever the database changes.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, RichLog, Static

from discover.live import RunState, describe_event
from discover.report import fmt
from evaluator.metrics import LIVE, metric

LOG_LINES = 1000


class RunsScreen(Screen):
    """Every run in the workspace, newest first; enter opens its live view."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self) -> None:
        super().__init__()
        self.run_ids: list[int] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (("id", "run"), ("status", "status"), ("tier", "tier"), ("spent", "spent"),
                           ("designs", "designs"), ("best", "best"), ("started", "started")):
            table.add_column(label, key=key)
        self.refresh_data()
        table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_data()  # catch up on what was written while another screen was on top

    def refresh_data(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        runs = self.app.db.views.runs_overview()
        self.run_ids = [run["id"] for run in runs]
        for run in runs:
            style = "yellow" if run["status"] == "running" else "green" if run["status"] == "finished" else "red"
            table.add_row(str(run["id"]), Text(run["status"], style=style), run["tier"],
                          f"{run['spent']}/{run['budget']}", str(run["designs"]), fmt(run["best_score"]),
                          run["started_at"][:19].replace("T", " "), key=str(run["id"]))
        if runs and cursor is not None:
            table.move_cursor(row=min(cursor, len(runs) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(LiveScreen(int(event.row_key.value)))


class LiveScreen(Screen):
    """One run as it happens: progress, stage, events and the best designs so far."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, run_id: int):
        super().__init__()
        self.run_id = run_id
        self.state = RunState()
        self.last_event = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="live-head")
        yield ProgressBar(id="live-progress", show_eta=False)
        yield Static(id="live-stage")
        yield RichLog(id="live-events", max_lines=LOG_LINES, wrap=False)
        yield DataTable(id="live-best", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#live-best", DataTable)
        for label in ("design", "score", *(metric(name).label for name in LIVE)):
            table.add_column(label, key=label)
        self.refresh_data()

    def on_screen_resume(self) -> None:
        self.refresh_data()  # catch up on what was written while another screen was on top

    def refresh_data(self) -> None:
        """Apply the events written since the last look."""
        events = self.app.db.records.events(self.run_id, self.last_event)
        log = self.query_one(RichLog)
        for event in events[-LOG_LINES:]:
            log.write(Text(f"{event.ts[11:19]} {describe_event(event.kind, event.data)}"))
        for event in events:
            self.state.apply(event.kind, event.data)
        if events:
            self.last_event = events[-1].id
        self._show_state()

    def _show_state(self) -> None:
        run = self.app.db.records.run(self.run_id)
        state = self.state
        self.query_one("#live-head", Static).update(
            f"run [b]{run.id}[/b] · {state.status if state.status != 'running' else run.status} · "
            f"{state.spent}/{state.budget or run.budget} evaluations · tier {run.tier} · "
            f"started {run.started_at[:16].replace('T', ' ')}")
        self.query_one(ProgressBar).update(total=state.budget or run.budget or None, progress=state.spent)
        self.query_one("#live-stage", Static).update(Text(state.stage, style="cyan"))
        table = self.query_one("#live-best", DataTable)
        table.clear()
        for entry in state.best():
            table.add_row(f"#{entry.design_id} {entry.name}", fmt(entry.score),
                          *(fmt(entry.metrics.get(name)) for name in LIVE), key=str(entry.design_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_design(int(event.row_key.value))
