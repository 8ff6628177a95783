"""The leaderboard: designs at one tier, sorted and filtered in SQL and shown a page at a time.

Only the page on screen is read (about a hundred rows, no code), so the first screen appears at
once even over 10,000 designs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from discover.report import fmt
from evaluator.metrics import BROWSER, METRICS, metric
from memory import ExperienceDB

PAGE = 50  # rows read at a time: more than a tall terminal shows, few enough to draw at once
ORIGINS = (None, "baseline", "llm", "offline", "user")
BASE_STATUSES = (None, "ok", "failed", "running")
# (row key, header); metric columns appear only when some row on the page has the metric.
FIXED_COLUMNS = (("id", "id"), ("name", "design"), ("origin", "origin"), ("status", "status"), ("score", "score"),
                 ("seeds", "seeds"))
METRIC_COLUMNS = tuple((name, metric(name).label) for name in BROWSER)
# Sorting by these starts ascending: the names, and every metric for which lower is better.
ASCENDING_FIRST = frozenset({"id", "name", "origin", "status", "duration",
                             *(name for name in METRICS if not metric(name).higher_is_better)})
STATUS_STYLES = {"ok": "green", "running": "yellow", "interrupted": "yellow"}


@dataclass(frozen=True)
class BoardQuery:
    """What the leaderboard shows: a tier, filters, a sort and a page."""

    tier: str
    tier_version: int
    status: str | None = None
    origin: str | None = None
    sort: str = "score"
    descending: bool = True
    offset: int = 0

    def describe(self, total: int, shown: int) -> str:
        arrow = "↓" if self.descending else "↑"
        rows = f"{self.offset + 1}–{self.offset + shown} of {total}" if shown else f"0 of {total}"
        return (f"tier [b]{self.tier}@v{self.tier_version}[/b] · status [b]{self.status or 'all'}[/b] · "
                f"origin [b]{self.origin or 'all'}[/b] · sort [b]{self.sort} {arrow}[/b] · {rows}")


def default_tier(db: ExperienceDB) -> tuple[str, int] | None:
    """The tier the commands default to (``ReadModels.current_tier``: the latest run's, else the latest
    evaluation's) at its most recently used version; else, while that tier has no results, the tier used most
    recently; None in an empty workspace."""
    tiers = [(t["tier"], t["tier_version"]) for t in db.views.evaluated_tiers()]
    name = db.views.current_tier()
    return next((tier for tier in tiers if tier[0] == name), tiers[0] if tiers else None)


def cycle(options: list, current):
    """The option after `current` (the first one when `current` is not among them)."""
    return options[(options.index(current) + 1) % len(options)] if current in options else options[0]


class LeaderboardScreen(Screen):
    """Designs at one tier, best first: sort by any column, filter by status, origin and tier, open a design."""

    BINDINGS = [
        Binding("enter", "open", "open", show=False),
        Binding("s", "sort", "sort"),
        Binding("S", "reverse", "reverse", show=False),
        Binding("f", "status", "status"),
        Binding("o", "origin", "origin"),
        Binding("t", "tier", "tier"),
        Binding("n", "page(1)", "next page", show=False),
        Binding("p", "page(-1)", "prev page", show=False),
        Binding("a", "lineage", "lineage"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_state: BoardQuery | None = None
        self.rows: list[dict] = []
        self.total = 0
        self.columns: list[tuple[str, str]] = []
        self.loaded_version: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="filters")
        yield DataTable(id="board", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_data()
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        if self.loaded_version != self.app.data_version:
            self.refresh_data()

    def refresh_data(self) -> None:
        """Read the current page again, keeping the cursor on the same design when it is still there."""
        self.loaded_version = self.app.data_version
        if self.query_state is None:
            tier = default_tier(self.app.db)
            if tier is None:
                self.query_one("#filters", Static).update(
                    "no evaluations yet: `discover seed` or `discover run` fills this workspace")
                return
            self.query_state = BoardQuery(*tier)
        q = self.query_state
        self.app.tier = (q.tier, q.tier_version)
        twins = self.app.db.records.twins(q.tier, q.tier_version)
        self.rows, self.total = self.app.db.views.leaderboard_page(
            q.tier, q.tier_version, status=q.status, origin=q.origin, sort=q.sort, descending=q.descending,
            limit=PAGE, offset=q.offset, hide=sorted(twins))
        hidden = f" · {len(twins)} twin{'s' * (len(twins) != 1)} hidden (memory.twins)" if twins else ""
        self.query_one("#filters", Static).update(q.describe(self.total, len(self.rows)) + hidden)
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_id()
        metrics = [(key, header) for key, header in METRIC_COLUMNS
                   if any(row["metrics"].get(key) is not None for row in self.rows)]
        columns = [*FIXED_COLUMNS, *metrics, ("duration", "secs")]
        if columns != self.columns:
            table.clear(columns=True)
            for key, header in columns:
                marker = (" ↓" if self.query_state.descending else " ↑") if key == self.query_state.sort else ""
                table.add_column(header + marker, key=key)
            self.columns = columns
        else:
            table.clear()
        for row in self.rows:
            table.add_row(*(self._cell(row, key) for key, _ in columns), key=str(row["id"]))
        ids = [row["id"] for row in self.rows]
        if selected in ids:
            table.move_cursor(row=ids.index(selected))

    @staticmethod
    def _cell(row: dict, key: str) -> str | Text:
        if key == "status":
            return Text(row["status"], style=STATUS_STYLES.get(row["status"], "red"))
        if key in ("id", "name", "origin"):
            return Text(str(row[key]), justify="right" if key == "id" else "left")
        if key == "seeds":
            seeds = row.get("seeds") or 0
            return Text(f"{seeds}*" if seeds == 1 else str(seeds), justify="right")
        value = {"score": row["score"], "duration": row["duration_s"]}.get(key, row["metrics"].get(key))
        if key == "tokens_per_s" and value is not None:
            value = round(value)
        return Text(fmt(value), justify="right")

    def selected_id(self) -> int | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or not table.is_valid_row_index(table.cursor_row):
            return None
        return self.rows[table.cursor_row]["id"]

    def _set(self, **changes) -> None:
        if self.query_state is None:
            return
        self.query_state = replace(self.query_state, **changes)
        self.columns = []  # headers carry the sort marker
        self.refresh_data()

    def sort_by(self, key: str) -> None:
        if self.query_state is None:
            return
        if key == self.query_state.sort:
            self._set(descending=not self.query_state.descending, offset=0)
        else:
            self._set(sort=key, descending=key not in ASCENDING_FIRST, offset=0)

    def action_sort(self) -> None:
        keys = [key for key, _ in self.columns]
        if keys and self.query_state:
            key = cycle(keys, self.query_state.sort)
            self._set(sort=key, descending=key not in ASCENDING_FIRST, offset=0)

    def action_reverse(self) -> None:
        if self.query_state:
            self._set(descending=not self.query_state.descending, offset=0)

    def action_status(self) -> None:
        if self.query_state:
            present = self.app.db.views.statuses_at(self.query_state.tier, self.query_state.tier_version)
            options = list(BASE_STATUSES) + [s for s in present if s not in BASE_STATUSES]
            self._set(status=cycle(options, self.query_state.status), offset=0)

    def action_origin(self) -> None:
        if self.query_state:
            self._set(origin=cycle(list(ORIGINS), self.query_state.origin), offset=0)

    def action_tier(self) -> None:
        if self.query_state:
            tiers = [(t["tier"], t["tier_version"]) for t in self.app.db.views.evaluated_tiers()]
            tier, version = cycle(tiers, (self.query_state.tier, self.query_state.tier_version))
            self._set(tier=tier, tier_version=version, offset=0)

    def action_page(self, step: int) -> None:
        if self.query_state:
            offset = self.query_state.offset + step * PAGE
            if 0 <= offset < self.total:
                self._set(offset=offset)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_design(int(event.row_key.value))

    def action_open(self) -> None:
        if (design_id := self.selected_id()) is not None:
            self.app.open_design(design_id)

    def action_lineage(self) -> None:
        if (design_id := self.selected_id()) is not None:
            self.app.open_lineage(design_id)
