"""Text plots drawn with braille dots (2 x 4 per character cell): the best score against evaluations, and
(key ``c``) each design's quality against its cost, with the Pareto front bright.

A terminal cell holds a 2-wide, 4-high grid of braille dots, so a plot 60 cells wide resolves 120
evaluations without any plotting library. The running best is drawn as a bright step line; every
scored evaluation is a dim dot beneath it, so one sees both progress and spread.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Static

from discover.report import fmt

# Bit of each dot in a braille character, by (column, row) inside the 2 x 4 cell.
_DOTS = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (1, 0): 0x08, (1, 1): 0x10, (1, 2): 0x20, (0, 3): 0x40,
         (1, 3): 0x80}
BEST_STYLE, POINT_STYLE, AXIS_STYLE = "bold green", "grey50", "dim"
LABEL_WIDTH = 8


class Canvas:
    """A grid of `width` x `height` cells addressed in dots: x in [0, 2 * width), y in [0, 4 * height), y = 0 on top."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.bits = [[0] * width for _ in range(height)]

    def dot(self, x: int, y: int) -> None:
        if 0 <= x < 2 * self.width and 0 <= y < 4 * self.height:
            self.bits[y // 4][x // 2] |= _DOTS[(x % 2, y % 4)]

    def vline(self, x: int, y0: int, y1: int) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            self.dot(x, y)


def running_best(scores: Sequence[float | None]) -> list[float | None]:
    """The best score seen after each evaluation (None until the first scored one)."""
    best, out = None, []
    for score in scores:
        if score is not None and (best is None or score > best):
            best = score
        out.append(best)
    return out


def render_plot(scores: Sequence[float | None], width: int, height: int) -> Text:
    """The plot of `scores` (one per finished evaluation, None when it has no score) in `width` x `height`
    cells, axis labels included."""
    plot_w, plot_h = max(width - LABEL_WIDTH - 1, 4), max(height - 2, 2)
    scored = [s for s in scores if s is not None]
    if not scored:
        return Text("no scored evaluations yet", style=AXIS_STYLE)
    low, high = min(scored), max(scored)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    n, dots_x, dots_y = len(scores), 2 * plot_w, 4 * plot_h

    def y_of(value: float) -> int:
        return round((high - value) / (high - low) * (dots_y - 1))

    def x_of(index: int) -> int:
        return 0 if n == 1 else round(index * (dots_x - 1) / (n - 1))

    best, points = Canvas(plot_w, plot_h), Canvas(plot_w, plot_h)
    for index, score in enumerate(scores):
        if score is not None:
            points.dot(x_of(index), y_of(score))
    curve = running_best(scores)
    previous = None
    for x in range(dots_x):
        value = curve[min(n - 1, round(x * (n - 1) / max(dots_x - 1, 1)))]
        if value is None:
            continue
        y = y_of(value)
        best.vline(x, previous if previous is not None else y, y)
        previous = y
    return _compose(best, points, low, high, n)


def _compose(best: Canvas, points: Canvas, low: float, high: float, n: int, axis: str | None = None) -> Text:
    text = Text()
    for row in range(best.height):
        label = fmt(high) if row == 0 else fmt(low) if row == best.height - 1 else ""
        text.append(f"{label:>{LABEL_WIDTH}}┤", style=AXIS_STYLE)
        for col in range(best.width):
            b, p = best.bits[row][col], points.bits[row][col]
            if b:
                text.append(chr(0x2800 + (b | p)), style=BEST_STYLE)
            elif p:
                text.append(chr(0x2800 + p), style=POINT_STYLE)
            else:
                text.append(" ")
        text.append("\n")
    text.append(" " * LABEL_WIDTH + "└" + "─" * best.width + "\n", style=AXIS_STYLE)
    if axis is not None:
        text.append(" " * (LABEL_WIDTH + 1) + axis, style=AXIS_STYLE)
        return text
    end = f"{n} evaluation{'s' if n != 1 else ''}"
    text.append(" " * (LABEL_WIDTH + 1) + "1" + end.rjust(max(best.width - 1, len(end))), style=AXIS_STYLE)
    return text


def render_front(points: Sequence[tuple[float, float | None, bool]], width: int, height: int) -> Text:
    """Quality (up) against the state's memory at 16k tokens (right, log scale) of each design, as
    (quality, MB or None, on the front): the front bright, the rest dim; a design without a measured
    state (no recurrent form) sits on the right edge, as costly as any."""
    plot_w, plot_h = max(width - LABEL_WIDTH - 1, 4), max(height - 2, 2)
    if not points:
        return Text("no scored evaluations yet", style=AXIS_STYLE)
    import math

    costs = [math.log10(max(c, 1e-6)) for _, c, _ in points if c is not None]
    left, right = (min(costs), max(costs)) if costs else (0.0, 1.0)
    right = right + max((right - left) * 0.1, 0.5)  # room at the right edge for the unmeasured
    low, high = min(q for q, _, _ in points), max(q for q, _, _ in points)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    dots_x, dots_y = 2 * plot_w, 4 * plot_h
    front, rest = Canvas(plot_w, plot_h), Canvas(plot_w, plot_h)
    for quality, cost_mb, on_front in points:
        x = dots_x - 1 if cost_mb is None else round((math.log10(max(cost_mb, 1e-6)) - left) / (right - left)
                                                     * (dots_x - 1))
        y = round((high - quality) / (high - low) * (dots_y - 1))
        (front if on_front else rest).dot(x, y)
    return _compose(front, rest, low, high, len(points),
                    axis=f"state MB at 16k tokens, log scale: {10 ** left:.3g} … {10 ** right:.3g} (right edge: no "
                         f"recurrent form) · {len(points)} designs")


class ScorePlot(Widget):
    """The plot, redrawn to the widget's size: the score history, or the quality-cost front."""

    scores: reactive[tuple[float | None, ...]] = reactive(tuple, layout=False)
    front: reactive[tuple | None] = reactive(None, layout=False)

    def render(self) -> Text:
        if self.front is not None:
            return render_front(self.front, self.size.width, self.size.height)
        return render_plot(self.scores, self.size.width, self.size.height)


class PlotScreen(Screen):
    """Best score against evaluations for the leaderboard's tier: every run together, or one run."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back"), Binding("t", "run", "next run"),
                Binding("c", "cost", "quality vs cost")]

    def __init__(self, tier: str, tier_version: int):
        super().__init__()
        self.tier, self.tier_version = tier, tier_version
        self.run_id: int | None = None
        self.show_front = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="plot-head")
        yield ScorePlot(id="plot")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        if self.show_front:
            self._refresh_front()
            return
        self.query_one(ScorePlot).front = None
        history = self.app.db.views.score_history(self.tier, self.tier_version, self.run_id)
        scores = tuple(row["score"] for row in history)
        best = running_best(scores)
        scope = "all runs" if self.run_id is None else f"run {self.run_id}"
        self.query_one("#plot-head", Static).update(
            f"best score against search evaluations · tier {self.tier}@v{self.tier_version} · {scope} · "
            f"{len(scores)} evaluations, best {fmt(best[-1] if best else None)}")
        self.query_one(ScorePlot).scores = scores

    def _refresh_front(self) -> None:
        from discover.report import leaderboard  # loads the tiers (and torch) only when asked

        rows = leaderboard(self.app.db, self.tier, 1 << 30, self.tier_version)
        points = tuple((r["quality"], r.get("state_mb_16k"), r["front"]) for r in rows if r["quality"] is not None)
        on_front = [r["name"] for r in rows if r["front"]]
        self.query_one("#plot-head", Static).update(
            f"quality (0 chance, 1 perfect) against the state's memory at 16k tokens · tier {self.tier}@v"
            f"{self.tier_version} · {len(points)} designs · front (bright): {', '.join(on_front) or '—'}")
        self.query_one(ScorePlot).front = points

    def action_cost(self) -> None:
        """Switch between the best-score history and the quality-cost front."""
        self.show_front = not self.show_front
        self.refresh_data()

    def action_run(self) -> None:
        """Cycle through all runs together and each run on its own."""
        runs = [None, *sorted(run["id"] for run in self.app.db.views.runs_overview())]
        self.run_id = runs[(runs.index(self.run_id) + 1) % len(runs)] if self.run_id in runs else None
        self.refresh_data()
