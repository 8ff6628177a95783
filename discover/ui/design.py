"""One design: overview and analysis, metrics beside parent and baselines, code, diff, sandbox log, LLM transcript."""

from __future__ import annotations

import json

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from discover import inspect
from discover.report import fmt
from evaluator.metrics import display_order

WIDE = 150  # columns from which the overview shows the code beside it
TABS = (("overview", "overview"), ("metrics", "metrics"), ("code", "code"), ("diff", "diff"), ("log", "log"),
        ("llm", "llm"))


class DesignScreen(Screen):
    """Everything recorded about one design, one tab per view."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("o", "tab('overview')", "overview", show=False),
        Binding("m", "tab('metrics')", "metrics", show=False),
        Binding("c", "tab('code')", "code"),
        Binding("d", "tab('diff')", "diff"),
        Binding("l", "tab('log')", "log"),
        Binding("t", "tab('llm')", "llm", show=False),
        Binding("a", "lineage", "lineage"),
        Binding("u", "parent", "parent"),
    ]

    def __init__(self, design_id: int):
        super().__init__()
        self.design_id = design_id
        self.info: dict = {}
        self.seen: tuple = ()  # what the design's records looked like when last drawn

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="design-head")
        with TabbedContent(id="tabs"):
            for pane_id, title in TABS:
                with TabPane(title, id=pane_id):
                    if pane_id == "overview":
                        with Horizontal():
                            with VerticalScroll(id="overview-scroll"):
                                yield Static(id="overview-body", classes="body")
                            with VerticalScroll(id="side-code"):  # shown beside the overview on wide terminals
                                yield Static(id="side-code-body", classes="body")
                    elif pane_id == "metrics":
                        yield DataTable(id="metrics-table", cursor_type="row", zebra_stripes=True)
                    else:
                        with VerticalScroll():
                            yield Static(id=f"{pane_id}-body", classes="body")
        yield Footer()

    def on_mount(self) -> None:
        self.set_class(self.app.size.width >= WIDE, "wide")
        self.refresh_data()

    def on_screen_resume(self) -> None:
        self.refresh_data()  # catch up on what was written while another screen was on top

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width >= WIDE, "wide")

    def refresh_data(self) -> None:
        """Read the design again when its records changed (its evaluation may finish while it is on screen);
        other writes, such as a running loop's next design, leave the screen and its scroll positions alone."""
        db = self.app.db
        seen = (tuple((e.id, e.status, e.score) for e in db.records.evaluations(self.design_id)),
                len(db.records.analyses(self.design_id)), inspect.verification(db, self.design_id) is not None)
        if seen == self.seen:
            return
        self.seen = seen
        self.info = info = inspect.show(db, self.design_id, self.app.tier)
        self.sub_title = f"design #{info['id']}"
        self.query_one("#design-head", Static).update(self._head(info))
        self.query_one("#overview-body", Static).update(self._overview(info))
        self._fill_metrics(info)
        for body in ("#code-body", "#side-code-body"):
            self.query_one(body, Static).update(Syntax(info["code"], "python", line_numbers=True, word_wrap=True,
                                                       theme="ansi_dark"))
        self.query_one("#diff-body", Static).update(self._diff(info))
        self.query_one("#log-body", Static).update(self._log(info))
        self.query_one("#llm-body", Static).update(self._transcript(info))

    @staticmethod
    def _head(info: dict) -> Text:
        head = Text.assemble((f"#{info['id']} {info['name']}", "bold"), f"  {info['origin']}")
        parents = ", ".join(f"#{p}" for p in info["parents"])
        head.append(f"  parents {parents}" if parents else "  root")
        best = info["best"]
        if best:
            verdict = f"score {fmt(best['score'])}" if best["status"] == "ok" else best["status"]
            head.append(f"  {best['tier']}@v{best['tier_version']}: ")
            head.append(verdict, style="green" if best["status"] == "ok" else "red")
        return head

    @staticmethod
    def _overview(info: dict) -> RenderableType:
        parts: list[RenderableType] = [Text(info["motivation"] or "(no motivation recorded)", style="italic")]
        best = info["best"]
        if best and best["reason"]:
            parts.append(Text(f"\n{best['status']}: {best['reason']}", style="red"))
        if line := inspect.verification_line(info["verification"]):
            parts.append(Text("\n" + line, style="bold"))
        parts.extend(Text("\n" + line, style="yellow") for line in inspect.twin_lines(info))
        if info["comparison"]:
            parts.append(Text(""))
            parts.append(inspect.comparison_table(info, max_baselines=3))
        children = ", ".join(f"#{c}" for c in info["children"][:20]) + (" …" if len(info["children"]) > 20 else "")
        if children:
            parts.append(Text(f"\nchildren: {children}"))
        for analysis in info["analyses"]:
            parts.append(Text(f"\nanalysis ({analysis['author']}, {analysis['created_at'][:19]})", style="bold"))
            parts.append(Text(analysis["text"]))
        if not info["analyses"]:
            parts.append(Text("\nno analysis recorded yet", style="dim"))
        return Group(*parts)

    def _fill_metrics(self, info: dict) -> None:
        """Rows are metrics; columns this design, its parent, then each baseline, best first (scroll right)."""
        table = self.query_one("#metrics-table", DataTable)
        table.clear(columns=True)
        comp = info["comparison"]
        if comp is None:
            table.add_column("no finished evaluation yet")
            return
        parent = comp["parent"]
        baselines = sorted(comp["baselines"], key=lambda b: (b["score"] is None, -(b["score"] or 0.0)))
        table.add_column(f"metric @ {comp['tier']}@v{comp['tier_version']}", key="metric")
        table.add_column(f"#{info['id']}", key="this")
        if parent:
            table.add_column(f"parent #{parent['id']}", key="parent")
        for b in baselines:
            table.add_column(b["name"], key=f"baseline-{b['id']}")
        names = display_order({*comp["metrics"], *(parent or {}).get("metrics", {})})
        for name in ["score", *names]:
            def value(result: dict, metric: str = name):
                if metric == "score":
                    return result["score"] if result["status"] in ("ok", None) else result["status"]
                return result["metrics"].get(metric)
            cells = [fmt(value(comp))] + ([fmt(value(parent))] if parent else []) + [fmt(value(b)) for b in baselines]
            table.add_row(name, *(Text(c, justify="right") for c in cells), key=name)

    def _diff(self, info: dict) -> RenderableType:
        if not info["parents"]:
            return Text("a root design: there is no parent to compare with", style="dim")
        change = inspect.diff(self.app.db, info["parents"][0], info["id"])
        title = Text(f"{change['a']['name']} (#{change['a']['id']}) → {info['name']} (#{info['id']})\n", style="bold")
        body = Syntax(change["diff"], "diff", theme="ansi_dark") if change["diff"] else Text("same code as the parent")
        return Group(title, body)

    @staticmethod
    def _log(info: dict) -> Text:
        text = Text()
        if not info["evaluations"]:
            return Text("no evaluations yet", style="dim")
        for e in info["evaluations"]:
            colour = "green" if e["status"] == "ok" else "yellow" if e["status"] == "running" else "red"
            text.append(f"evaluation #{e['id']}  {e['purpose']}  {e['tier']}@v{e['tier_version']}  seed {e['seed']}  ",
                        style="bold")
            text.append(e["status"], style=colour)
            text.append(f"  {fmt(e['duration_s'])} s\n" if e["duration_s"] is not None else "\n")
            if e["reason"]:
                text.append(f"{e['reason']}\n", style=colour)
            text.append((e["log"] or "(no log)").rstrip() + "\n\n")
        return text

    @staticmethod
    def _transcript(info: dict) -> Text:
        calls = info["llm_calls"]
        if not calls:
            return Text(f"no LLM calls for this design ({info['origin']} designs are written without one)"
                        if info["origin"] != "llm" else "no LLM calls recorded", style="dim")
        text = Text()
        for call in calls:
            tokens = f"{call.get('prompt_tokens') or 0}+{call.get('completion_tokens') or 0} tokens"
            cost = "cost unknown" if call.get("cost") is None else f"${call['cost']:.4f}"
            attempt = f" · attempt {call['attempt']}" if call.get("attempt") else ""
            cached = " · from the cache" if call.get("cached") else ""
            text.append(f"{call['role']} · {call['model']} · {call['status']} · {tokens} · {cost} · "
                        f"{fmt(call.get('latency_s'))} s{attempt}{cached}\n", style="bold")
            if call.get("error"):
                text.append(f"{call['error']}\n", style="red")
            for message in _messages(call.get("request")):
                text.append(f"[{message.get('role', '?')}]\n", style="cyan")
                text.append(str(message.get("content", "")).rstrip() + "\n")
            text.append("[reply]\n", style="green")
            text.append((call.get("reply") or "(no reply)").rstrip() + "\n\n")
        return text

    def action_tab(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane

    def action_lineage(self) -> None:
        self.app.open_lineage(self.design_id)

    def action_parent(self) -> None:
        if self.info.get("parents"):
            self.app.open_design(self.info["parents"][0])


def _messages(request) -> list[dict]:
    """The chat messages of a recorded request, whatever form it was stored in."""
    if isinstance(request, dict):
        request = request.get("messages", [request])
    if isinstance(request, str):
        return [{"role": "prompt", "content": request}]
    if isinstance(request, list):
        return [m if isinstance(m, dict) else {"role": "?", "content": json.dumps(m)} for m in request]
    return []
