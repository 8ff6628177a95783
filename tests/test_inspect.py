"""Inspection: show, lineage, diff and log as library functions and commands, the UI's read queries, and the
event formatter the live display and the UI share. Databases are real SQLite files written row by row."""

import json
import sqlite3

import pytest

from discover import inspect
from discover.cli import main
from discover.live import LiveView, RunState, describe_event
from memory import ExperienceDB

TIER, VERSION = "quick", 2


def code(name: str, body: str = "return x") -> str:
    return f'"""{name}\n\nA test design.\n"""\n\nimport torch.nn as nn\n\n\nclass Mixer(nn.Module):\n' \
           f"    def forward(self, x):\n        {body}\n"


def evaluate(db, design_id, run_id, status="ok", score=None, metrics=None, tier=TIER, purpose="search", log="ran"):
    eval_id = db.records.begin_evaluation(design_id, run_id, purpose, tier, VERSION, 0)
    if status != "running":
        db.records.finish_evaluation(eval_id, status, reason=None if status == "ok" else f"{status} happened",
                             metrics=metrics, score=score, log=log, duration_s=1.5)
    return eval_id


@pytest.fixture
def ws(tmp_path):
    """Baselines A and B; C from A; D a crossover of C and B; E from C failed; F from D still running."""
    db = ExperienceDB(tmp_path / "experience.db")
    run = db.records.start_run(4, TIER, {}, str(tmp_path))
    ids = {}
    ids["A"] = db.records.add_design("base-a", "baseline a", code("base-a"), origin="baseline")
    ids["B"] = db.records.add_design("base-b", "baseline b", code("base-b", "return 2 * x"), origin="baseline")
    evaluate(db, ids["A"], run, score=1.0, metrics={"mqar_acc": 0.5, "lm_bpb": 2.0}, purpose="seed")
    evaluate(db, ids["B"], run, score=0.8, metrics={"mqar_acc": 0.4, "lm_bpb": 2.1}, purpose="seed")
    ids["C"] = db.records.add_design("c", "from a", code("c", "return x + 1"), origin="offline", parents=[ids["A"]],
                             run_id=run)
    evaluate(db, ids["C"], run, score=0.9, metrics={"mqar_acc": 0.45, "lm_bpb": 2.3})
    evaluate(db, ids["C"], run, "nan")  # a later failure does not hide the ok result
    ids["D"] = db.records.add_design("d", "crossover", code("d", "return x - 1"), origin="llm",
                             parents=[ids["C"], ids["B"]], run_id=run)
    evaluate(db, ids["D"], run, score=1.2, metrics={"mqar_acc": 0.7}, log="checks passed\nmqar done")
    ids["E"] = db.records.add_design("e", "fails", code("e", "return x * x"), origin="offline", parents=[ids["C"]],
                             run_id=run)
    evaluate(db, ids["E"], run, "causality")
    ids["F"] = db.records.add_design("f", "in flight", code("f", "return -x"), origin="offline", parents=[ids["D"]],
                             run_id=run)
    evaluate(db, ids["F"], run, "running")
    db.records.add_analysis(ids["D"], "offline-analyst", "d beats its parent", {"delta": 0.3})
    db.journal.add_llm_call(run, "coder", "openai/test", prompt_tokens=10, completion_tokens=5, cost=None,
                    request=[{"role": "user", "content": "write d"}], reply="```python\n...\n```",
                    design_id=ids["D"])
    for kind, data in [("run-start", {"budget": 4, "tier": "quick@v2", "spent": 0, "resume": False}),
                       ("design", {"design_id": ids["D"], "name": "d", "parents": [ids["C"], ids["B"]]}),
                       ("evaluate-done", {"design_id": ids["D"], "name": "d", "status": "ok", "reason": None,
                                          "score": 1.2, "metrics": {"mqar_acc": 0.7}}),
                       ("evaluate-done", {"design_id": ids["E"], "name": "e", "status": "causality",
                                          "reason": "causality happened", "score": None, "metrics": None})]:
        db.records.log_event(run, kind, data)
    db.close()
    return tmp_path, ids, run


def test_show_has_code_results_comparison_analysis_and_transcript(ws):
    path, ids, run = ws
    with inspect.open_db(path) as db:
        info = inspect.show(db, ids["D"])
    assert info["code"].startswith('"""d') and info["parents"] == [ids["C"], ids["B"]]
    assert info["children"] == [ids["F"]]
    assert info["best"]["score"] == 1.2 and info["evaluations"][0]["log"] == "checks passed\nmqar done"
    comparison = info["comparison"]
    assert comparison["parent"]["id"] == ids["C"] and comparison["parent"]["score"] == 0.9
    assert [b["name"] for b in comparison["baselines"]] == ["base-a", "base-b"]
    assert info["analyses"][0]["text"] == "d beats its parent"
    assert info["llm_calls"][0]["request"] == [{"role": "user", "content": "write d"}]
    assert info["verification"] is None
    json.dumps(info)  # what `show --json` prints


def test_representative_evaluation_is_the_best_ok_one_else_the_latest(ws):
    path, ids, _ = ws
    with inspect.open_db(path) as db:
        assert inspect.show(db, ids["C"])["best"]["status"] == "ok"
        assert inspect.show(db, ids["E"])["best"]["status"] == "causality"
        assert inspect.show(db, ids["F"])["comparison"]["status"] == "running"


def test_show_of_an_unknown_design_is_a_named_error(ws):
    path, _, _ = ws
    with inspect.open_db(path) as db, pytest.raises(inspect.InspectError, match="no design with id 999"):
        inspect.show(db, 999)


def test_open_db_without_a_database_says_how_to_make_one(tmp_path):
    with pytest.raises(inspect.InspectError, match="discover run"):
        inspect.open_db(tmp_path / "nothing")


def test_lineage_goes_up_first_parents_and_down_every_child(ws):
    path, ids, _ = ws
    with inspect.open_db(path) as db:
        info = inspect.lineage(db, ids["C"])
        shallow = inspect.lineage(db, ids["C"], depth=1)
        from_f = inspect.lineage(db, ids["F"])
    assert [a["id"] for a in info["ancestors"]] == [ids["A"]]
    assert [d["id"] for d in info["descendants"]] == [ids["D"], ids["E"]]
    assert [c["id"] for c in info["descendants"][0]["children"]] == [ids["F"]]
    assert shallow["descendants"][0]["children"] == []
    assert [a["id"] for a in from_f["ancestors"]] == [ids["D"], ids["C"], ids["A"]]
    assert info["descendants"][1]["status"] == "causality"
    text = inspect.node_label(info["descendants"][0])
    assert "crossover of" in text and f"#{ids['B']}" in text


def test_diff_is_a_unified_diff_with_metric_deltas_at_a_common_tier(ws):
    path, ids, _ = ws
    with inspect.open_db(path) as db:
        change = inspect.diff(db, ids["C"], ids["D"])
        failed = inspect.diff(db, ids["C"], ids["E"])
    assert "-        return x + 1" in change["diff"] and "+        return x - 1" in change["diff"]
    rows = {row["metric"]: row for row in change["metrics"]}
    assert rows["score"]["delta"] == pytest.approx(0.3) and rows["mqar_acc"]["b"] == 0.7
    assert rows["lm_bpb"] == {"metric": "lm_bpb", "a": 2.3, "b": None, "delta": None}
    assert change["tier"] == "quick@v2"
    assert failed["metrics"][0] == {"metric": "score", "a": 0.9, "b": None, "delta": None}


def test_run_log_describes_each_event_as_the_live_display_does(ws):
    path, ids, run = ws
    with inspect.open_db(path) as db:
        log = inspect.run_log(db)
    assert log["run"]["id"] == run and log["run"]["spent"] == 4
    assert [e["kind"] for e in log["events"]] == ["run-start", "design", "evaluate-done", "evaluate-done"]
    assert all(e["text"] == describe_event(e["kind"], e["data"]) for e in log["events"])
    assert log["events"][3]["text"] == f"#{ids['E']} e: causality: causality happened"


def test_follow_yields_events_as_the_writer_adds_them_and_stops_at_run_end(ws):
    path, ids, run = ws
    writer = ExperienceDB(path / "experience.db")
    script = iter([lambda: writer.records.log_event(run, "stage", {"stage": "proposing"}), lambda: None,
                   lambda: (writer.records.finish_run(run, "finished"), writer.records.log_event(run, "run-end",
                                                                                  {"status": "finished"}))])

    def sleep(_):
        next(script)()

    with inspect.open_db(path) as reader:
        kinds = [e["kind"] for e in inspect.follow(reader, run, sleep=sleep)]
    writer.close()
    assert kinds == ["run-start", "design", "evaluate-done", "evaluate-done", "stage", "run-end"]


def test_leaderboard_page_sorts_filters_and_pages_in_sql(ws):
    path, ids, _ = ws
    with ExperienceDB(path / "experience.db", readonly=True) as db:
        rows, total = db.views.leaderboard_page(TIER, VERSION)
        assert [r["id"] for r in rows] == [ids[k] for k in "DACB"] + [ids["E"], ids["F"]] and total == 6
        rows, _ = db.views.leaderboard_page(TIER, VERSION, sort="lm_bpb", descending=False)
        assert [r["id"] for r in rows][:3] == [ids["A"], ids["B"], ids["C"]]  # designs without the metric last
        rows, total = db.views.leaderboard_page(TIER, VERSION, status="failed")
        assert [r["id"] for r in rows] == [ids["E"]] and total == 1
        assert [r["id"] for r in db.views.leaderboard_page(TIER, VERSION, status="running")[0]] == [ids["F"]]
        assert [r["id"] for r in db.views.leaderboard_page(TIER, VERSION, origin="baseline")[0]] == [ids["A"], ids["B"]]
        page, total = db.views.leaderboard_page(TIER, VERSION, limit=2, offset=2)
        assert [r["id"] for r in page] == [ids["C"], ids["B"]] and total == 6
        assert db.views.leaderboard_page(TIER, VERSION, limit=2, offset=10) == ([], 6)
        assert db.views.leaderboard_page("smoke", VERSION) == ([], 0)
        with pytest.raises(ValueError, match="sort must be"):
            db.views.leaderboard_page(TIER, VERSION, sort="score; DROP TABLE designs")


def test_ui_read_queries(ws):
    path, ids, run = ws
    with ExperienceDB(path / "experience.db", readonly=True) as db:
        assert db.views.evaluated_tiers() == [{"tier": TIER, "tier_version": VERSION, "n": 7}]
        overview = db.views.runs_overview()
        assert overview[0]["id"] == run and overview[0]["spent"] == 4 and overview[0]["best_score"] == 1.2
        assert [r["score"] for r in db.views.score_history(TIER, VERSION)] == [0.9, None, 1.2, None]
        children = {ids["A"]: [ids["C"]], ids["C"]: [ids["D"], ids["E"]]}
        assert db.views.children_of([ids["A"], ids["C"], ids["F"]]) == children
        assert db.views.statuses_at(TIER, VERSION) == ["causality", "nan", "ok", "running"]
        summaries = db.views.design_summaries([ids["E"], ids["B"]])
        assert summaries[ids["E"]]["status"] == "causality" and summaries[ids["B"]]["score"] == 0.8


def test_the_reader_cannot_write(ws):
    path, _, _ = ws
    with inspect.open_db(path) as db, pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.conn.execute("DELETE FROM events")


def test_live_view_and_a_reader_of_the_database_build_the_same_state(ws):
    path, ids, run = ws
    view = LiveView(budget=4)
    with inspect.open_db(path) as db:
        events = db.records.events(run)
    state = RunState()
    for event in events:
        view.on_event(event.kind, event.data)
        state.apply(event.kind, event.data)
    assert list(view.state.lines) == list(state.lines) and view.state.best() == state.best()
    assert state.spent == 2 and state.best()[0].design_id == ids["D"]
    assert view.progress.tasks[0].completed == 2


def test_describe_event_names_every_loop_event_and_keeps_unknown_ones():
    assert describe_event("duplicate", {"kind": "exact", "original_id": 3, "name": "x"}) == \
        "duplicate (exact) of #3: x — free"
    assert describe_event("stage", {"stage": "proposing"}) == "stage: proposing"
    assert describe_event("agent-failure", {"step": "coder", "status": "no-code", "reason": "no code block"}) == \
        "coder failed (no-code): no code block"
    assert describe_event("run-end", {"status": "stopped", "spent": 3, "reason": "cost cap $1 reached"}) == \
        "run stopped: 3 evaluations spent — cost cap $1 reached"
    assert describe_event("cap-reached", {"cost": 1.5}) == "cap-reached: {'cost': 1.5}"


def test_commands_print_json(ws, capsys):
    path, ids, run = ws
    workspace = ["--workspace", str(path)]
    assert main(["show", str(ids["D"]), *workspace, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "d"
    assert main(["lineage", str(ids["A"]), *workspace, "--json", "--depth", "1"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)["descendants"]] == [ids["C"]]
    assert main(["diff", str(ids["C"]), str(ids["D"]), *workspace, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tier"] == "quick@v2"
    assert main(["log", str(run), *workspace, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["events"]) == 4


def test_commands_print_rich_text(ws, capsys):
    path, ids, _ = ws
    workspace = ["--workspace", str(path)]
    assert main(["show", str(ids["D"]), *workspace, "--code"]) == 0
    out = capsys.readouterr().out
    assert "#4 d" in out and "d beats its parent" in out and "return x - 1" in out
    assert main(["lineage", str(ids["C"]), *workspace]) == 0
    assert "crossover of" in capsys.readouterr().out
    assert main(["log", *workspace]) == 0
    assert "causality happened" in capsys.readouterr().out


def test_commands_fail_clearly_on_unknown_ids_and_workspaces(ws, tmp_path, capsys):
    path, _, _ = ws
    assert main(["show", "999", "--workspace", str(path)]) == 2
    assert "no design with id 999" in capsys.readouterr().err
    assert main(["log", "42", "--workspace", str(path)]) == 2
    assert "no run with id 42" in capsys.readouterr().err
    assert main(["diff", "1", "2", "--workspace", str(tmp_path / "none")]) == 2
    assert "no experience database" in capsys.readouterr().err


def test_help_documents_the_json_of_each_new_command(capsys):
    for command, key in [("show", "evaluations"), ("lineage", "ancestors"), ("diff", "metrics"), ("log", "events"),
                         ("ui", "Press ?")]:
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0 and key in capsys.readouterr().out, command


def test_results_at_another_tier_do_not_mix_with_the_requested_one(ws):
    path, ids, run = ws
    with ExperienceDB(path / "experience.db") as db:
        evaluate(db, ids["C"], run, score=5.0, metrics={"mqar_acc": 0.9}, tier="smoke")
    with inspect.open_db(path) as db:
        latest = inspect.show(db, ids["C"])
        at_quick = inspect.show(db, ids["C"], (TIER, VERSION))
        change = inspect.diff(db, ids["C"], ids["D"])
    assert (latest["best"]["tier"], latest["best"]["score"]) == ("smoke", 5.0)
    assert (at_quick["best"]["tier"], at_quick["best"]["score"]) == (TIER, 0.9)
    assert change["tier"] is None and change["metrics"] == []  # D has no smoke result to compare with


def test_a_replay_never_stands_for_its_design(ws):
    """A replay repeats a record; its own figures (here a higher score and throughput) change nothing that
    `top`, `show` or the UI's leaderboard page show for the design."""
    path, ids, run = ws
    with ExperienceDB(path / "experience.db") as db:
        replay = evaluate(db, ids["D"], None, score=5.0, metrics={"mqar_acc": 0.7, "tokens_per_s": 35911.0},
                          purpose="replay")
        original = next(e for e in db.records.evaluations(ids["D"]) if e.purpose == "search")
        [(_, top_row)] = [(d, e) for d, e in db.records.top(TIER, 10, VERSION) if d.id == ids["D"]]
        assert top_row.id == original.id and top_row.score == 1.2
        rows, _ = db.views.leaderboard_page(TIER, VERSION)
        board = next(r for r in rows if r["id"] == ids["D"])
        assert board["evaluation_id"] == original.id and "tokens_per_s" not in board["metrics"]
        assert db.views.design_summaries([ids["D"]])[ids["D"]]["score"] == 1.2
        info = inspect.show(db, ids["D"], (TIER, VERSION))
        assert info["best"]["id"] == original.id and info["comparison"]["score"] == 1.2
        assert replay in [e["id"] for e in info["evaluations"]]  # still listed, as what it is


def test_read_commands_default_to_the_tier_of_the_latest_run(ws, capsys):
    path, ids, run = ws
    with ExperienceDB(path / "experience.db") as db:
        assert db.views.current_tier() == TIER
        evaluate(db, ids["A"], None, score=1.0, tier="smoke", purpose="seed")  # newer, at another tier
        assert db.views.current_tier() == TIER  # the latest run's tier wins over the latest evaluation's
        db.records.start_run(2, "smoke", {})
        assert db.views.current_tier() == "smoke"
    assert main(["show", str(ids["D"]), "--workspace", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"] is not None  # D has no smoke result: its own tier's
    assert main(["show", str(ids["A"]), "--workspace", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["tier"] == "smoke"
    assert main(["show", str(ids["A"]), "--tier", TIER, "--workspace", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["tier"] == TIER  # an explicit --tier wins
    assert main(["diff", str(ids["A"]), str(ids["C"]), "--workspace", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tier"] is None  # C has no smoke result to compare
    assert main(["diff", str(ids["A"]), str(ids["C"]), "--tier", TIER, "--workspace", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tier"] == f"{TIER}@v{VERSION}"


def test_an_empty_workspace_has_no_tier_of_its_own(tmp_path):
    with ExperienceDB(tmp_path / "experience.db") as db:
        assert db.views.current_tier() is None
        db.records.add_design("x", "", code("x"), origin="user")
        assert db.views.current_tier() is None


def test_an_llm_call_is_one_line():
    data = {"role": "coder", "model": "openai/x", "status": "timeout", "attempt": 2, "latency_s": 120.0,
            "prompt_tokens": 0, "completion_tokens": 0}
    assert describe_event("llm-call", data) == "coder · openai/x · timeout (attempt 2) · 120.0 s"
    ok = {**data, "status": "ok", "attempt": 1, "latency_s": 3.25, "prompt_tokens": 900, "completion_tokens": 300}
    assert describe_event("llm-call", ok) == "coder · openai/x · ok · 3.2 s · 900+300 tokens"
    state = RunState()
    state.apply("llm-call", data)
    assert list(state.lines) == ["coder · openai/x · timeout (attempt 2) · 120.0 s"]


def test_long_event_lines_are_shortened_at_a_word_boundary():
    from discover.live import clip

    reason = "causality: changing future tokens changed the outputs at earlier positions by 0.25"
    assert clip(reason, 200) == reason
    short = clip(reason, 40)
    assert short == "causality: changing future tokens…" and len(short) <= 40
    assert clip("a " + "x" * 50, 20) == "a…"
    assert clip("x" * 50, 20) == "x" * 19 + "…"  # one word wider than the line is the only cut inside a word


def test_seeding_shows_its_progress_and_an_estimate_apart_from_the_search():
    state = RunState(budget=6)
    state.apply("stage", {"stage": "seeding references", "total": 10, "workers": 2})
    assert state.stage == "seeding references 0/10" and not state.searching
    state.apply("reference", {"name": "gla", "seed": 0, "status": "ok", "duration_s": 30.0})
    assert state.stage == "seeding references 1/10 · about 2 min left"  # 9 left × 30 s over 2 workers
    view = LiveView(6)
    for kind, data in [("run-start", {"budget": 6}), ("stage", {"stage": "seeding references", "total": 1}),
                       ("reference", {"name": "gla", "seed": 0, "status": "ok", "duration_s": 3.0})]:
        view.on_event(kind, data)
    assert not view.progress.tasks[0].started  # the search's clock has not started
    view.on_event("stage", {"stage": "proposing"})
    assert view.progress.tasks[0].started and view.state.stage == "proposing"
