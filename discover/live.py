"""Following a run through its events: progress, the current stage, recent events, the best designs.

The loop hands each event ``(kind, data)`` to a listener and writes the same event to the database.
``RunState`` folds events into what a display shows, and ``describe_event`` turns one event into a
line of text; the live display of ``discover run`` (``LiveView``, fed by the listener; ``PlainLines``
when the output is a file or a pipe), the terminal UI and ``discover log`` (both fed from the
database) all use these two, so they tell the same story.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from discover.report import fmt
from evaluator.metrics import LIVE, metric

# Events worth a line in a short "recent events" panel; the rest only change the state.
NOTABLE = frozenset({"reference", "design", "duplicate", "evaluate-done", "twin", "agent-failure", "llm-call",
                     "run-end"})
# The events a run into a file or a pipe prints, one line each.
PLAIN = frozenset({"reference", "evaluate-done", "twin", "agent-failure", "run-end"})
EVENT_CHARS = 160  # an event line in the live panel is shortened to this, at a word boundary


def clip(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters: shortened at a word boundary with an ellipsis (a
    single word longer than the line is the only thing ever cut inside)."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    head = text[:width]
    if text[width] != " " and " " in head:
        head = head.rsplit(" ", 1)[0]
    return head[:width - 1].rstrip(" ,;:—-") + "…"


def duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 20 min': a rough time, for estimates."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


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
    if kind == "twin":
        return (f"#{data.get('design_id')} {data.get('name')} trained exactly as #{data.get('original_id')} "
                f"{data.get('original_name')}: a twin, left off the leaderboard")
    if kind == "analysis":
        return f"analysis of #{data.get('design_id')}: {data.get('text')}"
    if kind == "judgement":
        return f"judge on #{data.get('design_id')}: {fmt(data.get('score'))} — {data.get('text')}"
    if kind == "llm-call":
        attempt = data.get("attempt") or 1
        parts = [str(data.get("role")), str(data.get("model")),
                 f"{data.get('status')}" + (f" (attempt {attempt})" if attempt > 1 else "")]
        if data.get("latency_s") is not None:
            parts.append(f"{data['latency_s']:.1f} s")
        if data.get("prompt_tokens") or data.get("completion_tokens"):
            parts.append(f"{data.get('prompt_tokens') or 0}+{data.get('completion_tokens') or 0} tokens")
        return " · ".join(parts)
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
    references: int = 0  # seeded so far
    seeding: int | None = None  # references to seed, once the loop has said how many
    workers: int = 1  # evaluations at once, for the seeding estimate
    seeding_s: float = 0.0  # the seeded references' durations, summed
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    board: dict[int, BoardEntry] = field(default_factory=dict)

    def apply(self, kind: str, data: dict | None) -> None:
        data = data or {}
        if kind == "run-start":
            self.budget, self.spent, self.status = data.get("budget"), data.get("spent", 0), "running"
        elif kind == "stage":
            if data.get("stage") == "seeding references" and "total" in data:
                self.seeding, self.workers = data["total"], max(1, data.get("workers") or 1)
            self.stage = self.seeding_line() if data.get("stage") == "seeding references" else data.get("stage",
                                                                                                       self.stage)
        elif kind == "reference":
            self.references += 1
            self.seeding_s += data.get("duration_s") or 0.0
            self.stage = self.seeding_line()
        elif kind == "evaluate-start":
            self.stage = f"evaluating {data.get('name')}"
        elif kind == "evaluate-done":
            self._finished(data)
        elif kind == "run-end":
            self.status, self.spent = data.get("status", "finished"), data.get("spent", self.spent)
            self.stage = f"run {self.status}"
        if kind in NOTABLE:
            self.lines.append(describe_event(kind, data))

    @property
    def searching(self) -> bool:
        """True once the search itself has begun (the references are seeded)."""
        return not self.stage.startswith("seeding references") and self.stage != "starting"

    def seeding_line(self) -> str:
        """'seeding references 3/10 · about 2 min left' (see ``seeding_left``)."""
        if self.seeding is None:
            return f"seeding references ({self.references} done)"
        left = self.seeding_left()
        return f"seeding references {self.references}/{self.seeding}" + (f" · {left}" if left else "")

    def seeding_left(self) -> str:
        """'about 2 min left' once a reference is done and some are still to come, else '': the mean duration so
        far, times the references left, shared by the workers."""
        left = (self.seeding or 0) - self.references
        if not self.references or left <= 0:
            return ""
        return f"about {duration(self.seeding_s / self.references * left / self.workers)} left"

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
        # The search's clock starts when the search does: seeding the references has its own line.
        self.task = self.progress.add_task("budget", total=budget, start=False)

    def on_event(self, kind: str, data: dict) -> None:
        self.state.apply(kind, data)
        if kind == "run-start":
            self.progress.update(self.task, total=self.state.budget)
        if self.state.searching and not self.progress.tasks[0].started:
            self.progress.start_task(self.task)
        self.progress.update(self.task, completed=self.state.spent)

    def __rich__(self) -> Group:
        return Group(self.progress, f"[cyan]{escape(self.state.stage)}[/cyan]",
                     Panel(Text("\n".join(clip(line, EVENT_CHARS) for line in self.state.lines) or " "),
                           title="events"),
                     best_table(self.state))


class PlainLines:
    """``discover run`` into a file or a pipe: no live display, one line per reference seeded, per finished
    evaluation, per agent failure and when the run ends, each written (and flushed) as it happens."""

    def __init__(self, write: Callable[[str], None] | None = None):
        self.state = RunState()
        self.write = write or (lambda line: print(line, file=sys.stdout, flush=True))

    def on_event(self, kind: str, data: dict) -> None:
        self.state.apply(kind, data)
        if kind == "reference":
            left = self.state.seeding_left()
            self.write(f"seeding references {self.state.references}/{self.state.seeding}: "
                       f"{describe_event(kind, data)}" + (f" ({left})" if left else ""))
        elif kind == "evaluate-done":
            self.write(f"[{self.state.spent}/{self.state.budget}] {describe_event(kind, data)}")
        elif kind in PLAIN:
            self.write(describe_event(kind, data))


def best_table(state: RunState) -> Table:
    table = Table("design", "score", *(metric(name).label for name in LIVE), box=None, title="best so far (this run)")
    for entry in state.best():
        table.add_row(clip(f"#{entry.design_id} {entry.name}", 40), fmt(entry.score),
                      *(fmt(entry.metrics.get(name)) for name in LIVE))
    return table
