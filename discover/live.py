"""The live display of ``discover run``: progress, the current stage, recent events, the leaderboard.

It consumes the same events the loop writes to the database (and the terminal UI reads)."""

from __future__ import annotations

from collections import deque

from rich.console import Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from discover.report import fmt


class LiveView:
    def __init__(self, budget: int):
        self.progress = Progress(TextColumn("[bold]evaluations"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn())
        self.task = self.progress.add_task("budget", total=budget)
        self.stage = "starting"
        self.lines: deque[str] = deque(maxlen=8)
        self.board: dict[str, tuple[float, dict]] = {}
        self.references = 0

    def on_event(self, kind: str, data: dict) -> None:
        if kind == "run-start":
            self.progress.update(self.task, completed=data.get("spent", 0))
        elif kind == "stage":
            self.stage = data["stage"]
        elif kind == "reference":
            self.references += 1
            self.stage = f"seeding references ({self.references} done)"
            self.lines.append(f"reference {data['name']} seed {data['seed']}: {data['status']}")
        elif kind == "design":
            self.lines.append(f"new design #{data['design_id']} {data['name']}")
        elif kind == "duplicate":
            self.lines.append(f"duplicate ({data['kind']}) of #{data['original_id']}: {data['name']} — free")
        elif kind == "evaluate-start":
            self.stage = f"evaluating {data['name']}"
        elif kind == "evaluate-done":
            self.progress.advance(self.task)
            verdict = f"score {fmt(data['score'])}" if data["status"] == "ok" else f"{data['status']}: {data['reason']}"
            self.lines.append(f"#{data['design_id']} {data['name']}: {verdict}"[:110])
            if data["score"] is not None:
                self.board[f"#{data['design_id']} {data['name']}"] = (data["score"], data["metrics"])

    def __rich__(self) -> Group:
        table = Table("design", "score", "mqar", "parity", box=None, title="best so far (this run)")
        for name, (value, metrics) in sorted(self.board.items(), key=lambda kv: -kv[1][0])[:5]:
            table.add_row(name[:40], fmt(value), fmt(metrics.get("mqar_acc")), fmt(metrics.get("parity_acc")))
        return Group(self.progress, f"[cyan]{self.stage}[/cyan]", Panel("\n".join(self.lines) or " ", title="events"),
                     table)
