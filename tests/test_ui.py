"""The terminal UI driven by Textual's pilot: the leaderboard, sorting and filtering, a design's views, lineage,
runs and the live view, help and plot. Workspaces are synthetic (written row by row) except one real tiny run."""

import asyncio
from pathlib import Path

import pytest
from textual.widgets import RichLog, TabbedContent

from discover.live import LiveView, RunState
from discover.ui import DiscoverApp
from discover.ui.demo import TIER, TIER_VERSION, build_demo_workspace
from discover.ui.design import DesignScreen
from discover.ui.help import HelpScreen
from discover.ui.leaderboard import PAGE, LeaderboardScreen
from discover.ui.lineage import LineageScreen, MoreChildren
from discover.ui.plot import PlotScreen, ScorePlot
from discover.ui.runs import LiveScreen, RunsScreen
from memory import ExperienceDB
from memory.baselines import BASELINES


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """120 searched designs at one tier plus a few at a second tier; the second run is still running."""
    root = tmp_path_factory.mktemp("demo")
    build_demo_workspace(root, designs=120, seed=1)
    with ExperienceDB(root / "experience.db") as db:
        first = len(BASELINES) + 1  # the demo records the baselines first
        for design_id in (first, first + 1, first + 2):
            eval_id = db.records.begin_evaluation(design_id, None, "search", "smoke", 2, 0)
            db.records.finish_evaluation(eval_id, "ok", metrics={"mqar_acc": 0.5}, score=0.5, log="smoke run")
    return root


def drive(workspace, script, size=(80, 24)):
    """Run `script(app, pilot)` against the UI at `size` and return what it returns."""

    async def main():
        app = DiscoverApp(workspace, poll_s=3600)  # tests call app.poll() themselves
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            return await script(app, pilot)

    return asyncio.run(main())


async def press(pilot, *keys):
    await pilot.press(*keys)
    await pilot.pause()


def reader(workspace):
    return ExperienceDB(Path(workspace) / "experience.db", readonly=True)


def test_first_screen_is_the_leaderboard_best_first(demo):
    async def script(app, pilot):
        screen = app.screen
        assert isinstance(screen, LeaderboardScreen)
        return screen.rows, screen.total, str(screen.query_one("#filters").content)

    rows, total, filters = drive(demo, script)
    scores = [r["score"] for r in rows if r["score"] is not None]
    assert scores == sorted(scores, reverse=True) and len(rows) == PAGE
    with reader(demo) as db:
        assert total == db.views.leaderboard_page(TIER, TIER_VERSION)[1] == 120 + len(BASELINES)
    assert f"{TIER}@v{TIER_VERSION}" in filters and f"1–50 of {120 + len(BASELINES)}" in filters


def test_sort_cycles_columns_and_reverses(demo):
    async def script(app, pilot):
        screen = app.screen
        await press(pilot, "s")
        after_score = screen.query_state.sort
        for _ in range(len(screen.columns)):
            if screen.query_state.sort == "mqar_acc":
                break
            await press(pilot, "s")
        by_mqar = [r["metrics"].get("mqar_acc") for r in screen.rows]
        await press(pilot, "S")
        reversed_ = [r["metrics"].get("mqar_acc") for r in screen.rows]
        screen.sort_by("name")
        await pilot.pause()
        return screen.query_state, by_mqar, reversed_, [r["name"] for r in screen.rows], after_score

    state, by_mqar, reversed_, names, after_score = drive(demo, script)
    assert after_score == "seeds"  # the column after the score
    assert state.sort == "name" and not state.descending
    present = [v for v in by_mqar if v is not None]
    assert present == sorted(present, reverse=True)
    low = [v for v in reversed_ if v is not None]
    assert low == sorted(low) and low[0] < present[0]
    assert names == sorted(names)


def test_filters_by_status_origin_and_tier(demo):
    async def script(app, pilot):
        screen = app.screen
        seen = {}
        await press(pilot, "f")
        seen["ok"] = {r["status"] for r in screen.rows}
        await press(pilot, "f")
        seen["failed"] = ({r["status"] for r in screen.rows}, screen.total)
        seen["cycle"] = []
        while screen.query_state.status is not None and len(seen["cycle"]) < 20:
            await press(pilot, "f")  # running, then each named status present, then all again
            seen["cycle"].append((screen.query_state.status, {r["status"] for r in screen.rows}))
        await press(pilot, "o")
        seen["baseline"] = ({r["origin"] for r in screen.rows}, screen.query_state.status)
        await press(pilot, "o")
        seen["llm"] = {r["origin"] for r in screen.rows}
        await press(pilot, "t")  # filters stay when the tier changes
        seen["smoke-llm"] = [r["id"] for r in screen.rows]
        await press(pilot, "o", "o", "o")  # offline, user, all
        seen["tier"] = (screen.query_state.tier, [r["id"] for r in screen.rows])
        return seen

    seen = drive(demo, script)
    assert seen["ok"] == {"ok"}
    failed, n_failed = seen["failed"]
    assert failed and failed.isdisjoint({"ok", "running"})
    with reader(demo) as db:
        assert n_failed == db.views.leaderboard_page(TIER, TIER_VERSION, status="failed")[1]
    visited = [status for status, _ in seen["cycle"]]
    assert visited[0] == "running" and visited[-1] is None and "causality" in visited
    assert all(shown <= {status} for status, shown in seen["cycle"][:-1])
    assert seen["baseline"][0] == {"baseline"} and seen["baseline"][1] is None
    first = len(BASELINES) + 1  # the demo records the baselines first, then the second tier's designs
    assert seen["llm"] == {"llm"} and seen["smoke-llm"] == [first]
    assert seen["tier"] == ("smoke", [first, first + 1, first + 2])


def test_pages_forward_and_back(demo):
    async def script(app, pilot):
        screen = app.screen
        first = [r["id"] for r in screen.rows]
        await press(pilot, "n")
        second = [r["id"] for r in screen.rows]
        await press(pilot, "n", "n", "n")  # past the end: stays on the last page
        last = (screen.query_state.offset, len(screen.rows))
        await press(pilot, "p", "p")
        return first, second, last, [r["id"] for r in screen.rows]

    first, second, last, back = drive(demo, script)
    assert not set(first) & set(second) and last == (100, 120 + len(BASELINES) - 100) and back == first


def test_open_a_design_and_see_its_code_diff_log_and_transcript(demo):
    with reader(demo) as db:
        design = next(d for d in db.records.designs("llm")
                      if d.parents and db.records.evaluations(d.id)[0].status == "ok")
        parent = db.records.design(design.parents[0])

    async def script(app, pilot):
        board = app.screen
        board.query_state = board.query_state.__class__(TIER, TIER_VERSION, sort="id", descending=False)
        board.refresh_data()
        board.query_one("#board").move_cursor(row=[r["id"] for r in board.rows].index(design.id))
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, DesignScreen) and screen.design_id == design.id
        seen = {"head": screen.query_one("#design-head").content.plain,
                "code": screen.query_one("#code-body").content.code}
        for key, pane in [("d", "diff"), ("l", "log"), ("t", "llm"), ("m", "metrics")]:
            await press(pilot, key)
            assert screen.query_one(TabbedContent).active == pane
        seen["diff"] = screen.query_one("#diff-body").content.renderables[1].code
        seen["log"] = screen.query_one("#log-body").content.plain
        seen["llm"] = screen.query_one("#llm-body").content.plain
        seen["metrics"] = [str(c.label) for c in screen.query_one("#metrics-table").columns.values()]
        await press(pilot, "u")
        seen["parent"] = app.screen.design_id
        await press(pilot, "escape", "escape")
        seen["back"] = type(app.screen)
        return seen

    seen = drive(demo, script)
    assert seen["head"].startswith(f"#{design.id} {design.name}")
    assert seen["code"] == design.code
    assert f"--- #{parent.id} {parent.name}" in seen["diff"] and f"+++ #{design.id} {design.name}" in seen["diff"]
    assert "evaluation #" in seen["log"] and "mqar done" in seen["log"]
    assert "[reply]" in seen["llm"] and "researcher" in seen["llm"]
    assert seen["metrics"][1:3] == [f"#{design.id}", f"parent #{parent.id}"]
    assert len(seen["metrics"]) == 3 + len(BASELINES)  # the metric, the design, its parent, each baseline
    assert seen["parent"] == parent.id and seen["back"] is LeaderboardScreen


def test_follow_lineage_to_the_parent_and_show_an_ancestors_other_children(demo):
    with reader(demo) as db:
        design = next(d for d in reversed(db.records.designs("offline"))
                      if d.parents and db.views.child_ids(d.id) and len(db.views.child_ids(d.parents[0])) > 1)
        children, siblings = db.views.child_ids(design.id), db.views.child_ids(design.parents[0])

    async def script(app, pilot):
        app.push_screen(DesignScreen(design.id))
        await pilot.pause()
        await press(pilot, "a")
        screen = app.screen
        assert isinstance(screen, LineageScreen)
        await pilot.pause()
        tree = screen.query_one("#lineage")
        node = tree.cursor_node
        seen = {"start": node.data, "below": [c.data for c in node.children],
                "before": [c.data for c in node.parent.children]}
        more = next(c for c in node.parent.children if isinstance(c.data, MoreChildren))
        tree.move_cursor(more)
        await press(pilot, "enter")
        seen["after"] = [c.data for c in node.parent.children]
        tree.move_cursor(node)
        await press(pilot, "up")
        await press(pilot, "enter")
        seen["opened"] = app.screen
        return seen

    seen = drive(demo, script)
    assert seen["start"] == design.id and seen["below"] == children
    assert seen["before"][0] == design.id and len(seen["before"]) == 2  # the design, then "… other children"
    assert sorted(seen["after"]) == sorted(siblings)
    assert isinstance(seen["opened"], DesignScreen) and seen["opened"].design_id == design.parents[0]


def test_live_view_follows_a_run_as_the_writer_records_it(tmp_path):
    build_demo_workspace(tmp_path, designs=30, seed=2)  # run 2 is running with one evaluation in flight
    writer = ExperienceDB(tmp_path / "experience.db")

    async def script(app, pilot):
        await press(pilot, "r")
        assert isinstance(app.screen, RunsScreen) and app.screen.run_ids == [2, 1]
        await press(pilot, "enter")
        live = app.screen
        assert isinstance(live, LiveScreen) and live.run_id == 2
        before = (live.state.spent, live.state.status)
        # The loop goes on in another connection while the UI holds its own open.
        flight = next(e for e in writer.records.evaluations_at(TIER, TIER_VERSION, "running"))
        writer.records.finish_evaluation(flight.id, "ok", metrics={"mqar_acc": 0.99}, score=9.5)
        writer.records.log_event(2, "evaluate-done", {"design_id": flight.design_id, "name": "last", "status": "ok",
                                                      "reason": None, "score": 9.5, "metrics": {"mqar_acc": 0.99}})
        writer.records.finish_run(2, "finished")
        writer.records.log_event(2, "run-end", {"status": "finished", "spent": writer.records.spent(2)})
        app.poll()
        await pilot.pause()
        lines = [strip.text for strip in live.query_one(RichLog).lines]
        return before, live.state, lines, app.sub_title

    before, state, lines, sub_title = drive(tmp_path, script)
    writer.close()
    assert before == (2, "running")
    assert state.status == "finished" and state.spent == 3 and state.best()[0].score == 9.5
    assert any("last: score 9.5" in line for line in lines) and "run finished" in lines[-1]
    assert sub_title == "run 2 finished 3/5"


def test_a_design_on_screen_updates_when_its_evaluation_finishes(tmp_path):
    build_demo_workspace(tmp_path, designs=20, seed=3)
    writer = ExperienceDB(tmp_path / "experience.db")
    flight = writer.records.evaluations_at(TIER, TIER_VERSION, "running")[0]

    async def script(app, pilot):
        app.push_screen(DesignScreen(flight.design_id))
        await pilot.pause()
        screen = app.screen
        before, drawn = screen.query_one("#design-head").content.plain, screen.info
        writer.records.log_event(2, "stage", {"stage": "proposing"})  # another write: nothing to redraw
        app.poll()
        await pilot.pause()
        unchanged = screen.info is drawn
        writer.records.finish_evaluation(flight.id, "nan", reason="loss became nan at step 3", log="nan at step 3")
        app.poll()
        await pilot.pause()
        return before, unchanged, screen.query_one("#design-head").content.plain, screen.query_one(
            "#log-body").content.plain

    before, unchanged, after, log = drive(tmp_path, script)
    writer.close()
    assert before.endswith("running") and unchanged
    assert after.endswith("nan") and "loss became nan at step 3" in log


def test_help_lists_the_keys_of_the_screen_below(demo):
    async def script(app, pilot):
        await press(pilot, "question_mark")
        help_screen = app.screen
        text = " ".join(str(s.content.renderable if hasattr(s.content, "renderable") else s.content)
                        for s in help_screen.query("Static"))
        await press(pilot, "escape")
        return help_screen, text, app.screen

    help_screen, _, after = drive(demo, script)
    assert isinstance(help_screen, HelpScreen) and isinstance(help_screen.below, LeaderboardScreen)
    assert isinstance(after, LeaderboardScreen)


def test_plot_shows_the_best_score_against_evaluations(demo):
    async def script(app, pilot):
        await press(pilot, "g")
        screen = app.screen
        assert isinstance(screen, PlotScreen)
        plot = screen.query_one(ScorePlot)
        all_runs = len(plot.scores)
        drawing = plot.render().plain
        await press(pilot, "t", "t")  # run 1 alone, then run 2 alone
        return all_runs, drawing, screen.run_id, len(plot.scores)

    all_runs, drawing, run_id, run_2 = drive(demo, script)
    with reader(demo) as db:
        assert all_runs == len(db.views.score_history(TIER, TIER_VERSION)) > 100
        assert run_2 == len(db.views.score_history(TIER, TIER_VERSION, run_id=2))
    assert run_id == 2 and any(0x2800 < ord(c) <= 0x28FF for c in drawing) and "evaluations" in drawing


def test_the_plot_shows_quality_against_cost_with_the_front(demo):
    async def script(app, pilot):
        await press(pilot, "g", "c")
        plot = app.screen.query_one(ScorePlot)
        return plot.front, plot.render().plain, str(app.screen.query_one("#plot-head").render())

    front, drawing, head = drive(demo, script)
    assert front and any(on for _, _, on in front) and not all(on for _, _, on in front)
    assert any(cost is None for _, cost, _ in front)  # designs without a measured state, on the right edge
    assert "state MB at 16k tokens" in drawing and any(0x2800 < ord(c) <= 0x28FF for c in drawing)
    assert "front (bright):" in head


def test_every_screen_is_reachable_by_keys_at_80x24(demo):
    """Each screen is drawn after each key (a drawing error would end the app and fail the test)."""
    async def script(app, pilot):
        shown = []
        for keys in [(), ("enter",), ("c",), ("a",), ("escape", "escape", "r"), ("enter",), ("escape", "escape", "g"),
                     ("escape", "question_mark")]:
            await press(pilot, *keys)
            shown.append(type(app.screen).__name__)
        return shown

    assert drive(demo, script) == ["LeaderboardScreen", "DesignScreen", "DesignScreen", "LineageScreen", "RunsScreen",
                                   "LiveScreen", "PlotScreen", "HelpScreen"]


def test_an_empty_workspace_says_how_to_fill_it(tmp_path):
    ExperienceDB(tmp_path / "experience.db").close()

    async def script(app, pilot):
        return str(app.screen.query_one("#filters").content)

    assert "no evaluations yet" in drive(tmp_path, script)


@pytest.mark.slow
def test_over_a_real_run_the_ui_shows_what_the_live_display_showed(tmp_path):
    """A real tiny run: the UI's live view, rebuilt from the database, matches the run's own live display."""
    from discover.config import RunConfig
    from discover.loop import run

    config = RunConfig(workspace=str(tmp_path), tier="full-tiny", budget=2, workers=2,
                       references=("linear_attention",))
    view = LiveView(config.budget)
    summary = run(config, listener=view.on_event)

    async def script(app, pilot):
        board = app.screen
        ids = [r["id"] for r in board.rows]
        app.push_screen(LiveScreen(summary.run_id))
        await pilot.pause()
        state: RunState = app.screen.state
        await press(pilot, "escape", "enter")
        return ids, state, app.screen.query_one("#log-body").content.plain

    ids, state, log = drive(tmp_path, script)
    assert list(state.lines) == list(view.state.lines) and state.best() == view.state.best()
    assert state.spent == view.state.spent == 2 and state.status == "finished"
    with reader(tmp_path) as db:
        assert set(ids) == {d.id for d in db.records.designs()}
    assert "checks passed" in log
