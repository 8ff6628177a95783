"""The help screen: the keys of the screen it was opened from, and the keys that work everywhere."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

KEY_NAMES = {"question_mark": "?", "escape": "esc", "space": "space", "enter": "enter"}


def key_table(title: str, bindings: list) -> Table:
    table = Table(title=title, box=None, show_header=False, title_justify="left", title_style="bold")
    table.add_column(style="cyan", min_width=6)
    table.add_column()
    for binding in bindings:
        if isinstance(binding, tuple):
            binding = Binding(*binding)
        table.add_row(KEY_NAMES.get(binding.key, binding.key), binding.description)
    return table


class HelpScreen(ModalScreen):
    """Keys for the screen below; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape", "app.pop_screen", "close"), Binding("q", "app.pop_screen", "close"),
                Binding("question_mark", "app.pop_screen", "close")]

    def __init__(self, below: Screen):
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        about = (type(self.below).__doc__ or "").strip().splitlines()[0] if type(self.below).__doc__ else ""
        extra = getattr(self.below, "HELP_KEYS", [])
        with VerticalScroll(id="help"):
            yield Static(Text(about, style="italic"))
            yield Static(key_table("this screen", [*self.below.BINDINGS, *extra]))
            yield Static(key_table("everywhere", self.app.BINDINGS))
            yield Static(Text("arrows, page up/down and home/end move; the mouse works too", style="dim"))
