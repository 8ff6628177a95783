"""Following a run through its events: progress, the current stage, recent events, the best designs.

The loop hands each event ``(kind, data)`` to a listener and writes the same event to the database.
``RunState`` folds events into what a display shows, and ``describe_event`` turns one event into a
line of text; the live display of ``discover run`` (``LiveView``, fed by the listener), the terminal
UI and ``discover log`` (both fed from the database) all use these two, so they tell the same story.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from discover.report import fmt
from evaluator.metrics import LIVE, metric

# Events worth a line in a short "recent events" panel; the rest only change the state.
NOTABLE = frozenset({"reference", "design", "duplicate", "evaluate-done", "agent-failure", "run-end"})


def describe_event(kind: str, data: dict | None) -> str:
    """One line of text for an event (unknown kinds are shown with their data, never dropped)."""
    data = data or {}
    if kind == "run-start":
        resumed = " (resumed)" if data.get("resume") else ""
        return (f"run started{resumed}: budget {data.get('budget')}, tier {data.get('tier')}, "
                f"spent {data.get('spent', 0)}")
    if kind == "stage":
        return f"stage: {data.get('stage')}"
    if kind == "reference":
        return f"reference {data.get('name')} seed {data.get('seed')}: {data.get('status')}"
    if kind == "design":
        parents = ", ".join(f"#{p}" for p in data.get("parents") or ())
        return f"new design #{data.get('design_id')} {data.get('name')}" + (f" from {parents}" if parents else "")
    if kind == "duplicate":
        return f"duplicate ({data.get('kind')}) of #{data.get('original_id')}: {data.get('name')} — free"
    if kind == "evaluate-start":
        attempt = data.get("attempt", 1)
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        return f"evaluating #{data.get('design_id')} {data.get('name')}{retry}"
    if kind == "evaluate-done":
        if data.get("status") == "ok":
            verdict = f"score {fmt(data.get('score'))}"
        else:
            verdict = f"{data.get('status')}: {data.get('reason')}"
        return f"#{data.get('design_id')} {data.get('name')}: {verdict}"
    if kind == "analysis":
        return f"analysis of #{data.get('design_id')}: {data.get('text')}"
    if kind == "judgement":
        return f"judge on #{data.get('design_id')}: {fmt(data.get('score'))} — {data.get('text')}"
    if kind == "agent-failure":
        return f"{data.get('step')} failed ({data.get('status')}): {data.get('reason')}"
    if kind == "run-end":
        reason = f" — {data['reason']}" if data.get("reason") else ""
        return f"run {data.get('status')}: {data.get('spent')} evaluations spent{reason}"
    return f"{kind}: {data}" if data else kind


@dataclass
class BoardEntry:
    design_id: int
    name: str
    score: float
    metrics: dict


@dataclass
class RunState:
    """What a display of one run shows, built by applying its events in order."""

    budget: int | None = None
    spent: int = 0
    stage: str = "starting"
    status: str = "running"
    references: int = 0
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    board: dict[int, BoardEntry] = field(default_factory=dict)

    def apply(self, kind: str, data: dict | None) -> None:
        data = data or {}
        if kind == "run-start":
            self.budget, self.spent, self.status = data.get("budget"), data.get("spent", 0), "running"
        elif kind == "stage":
            self.stage = data.get("stage", self.stage)
        elif kind == "reference":
            self.references += 1
            self.stage = f"seeding references ({self.references} done)"
        elif kind == "evaluate-start":
            self.stage = f"evaluating {data.get('name')}"
        elif kind == "evaluate-done":
            self._finished(data)
        elif kind == "run-end":
            self.status, self.spent = data.get("status", "finished"), data.get("spent", self.spent)
            self.stage = f"run {self.status}"
        if kind in NOTABLE:
            self.lines.append(describe_event(kind, data))

    def _finished(self, data: dict) -> None:
        self.spent += 1
        if data.get("score") is not None:
            self.board[data["design_id"]] = BoardEntry(data["design_id"], data.get("name", ""), data["score"],
                                                       data.get("metrics") or {})

    def best(self, k: int = 5) -> list[BoardEntry]:
        """The k best scored designs of the run so far, best first."""
        return sorted(self.board.values(), key=lambda e: (-e.score, e.design_id))[:k]


class LiveView:
    """The rich display of ``discover run``: pass ``on_event`` to the loop as its listener."""

    def __init__(self, budget: int):
        self.state = RunState(budget=budget)
        self.progress = Progress(TextColumn("[bold]evaluations"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn())
        self.task = self.progress.add_task("budget", total=budget)

    def on_event(self, kind: str, data: dict) -> None:
        self.state.apply(kind, data)
        self.progress.update(self.task, completed=self.state.spent)

    def __rich__(self) -> Group:
        return Group(self.progress, f"[cyan]{self.state.stage}[/cyan]",
                     Panel("\n".join(line[:110] for line in self.state.lines) or " ", title="events"),
                     best_table(self.state))


def best_table(state: RunState) -> Table:
    table = Table("design", "score", *(metric(name).label for name in LIVE), box=None, title="best so far (this run)")
    for entry in state.best():
        table.add_row(f"#{entry.design_id} {entry.name}"[:40], fmt(entry.score),
                      *(fmt(entry.metrics.get(name)) for name in LIVE))
    return table
