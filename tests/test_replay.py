"""discover replay: a recorded evaluation run again from the archived code, compared metric by metric."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from discover.cli import main
from evaluator import evaluate, get_tier
from evaluator.reproduce import TOLERANCES, compare, metric_kind
from memory import DesignArchive, ExperienceDB
from memory.replay import ReplayError, replay

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
TIER = "full-tiny"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A workspace with one design evaluated once, for real, as part of a run (seed 3)."""
    root = tmp_path_factory.mktemp("ws")
    with ExperienceDB(root / "experience.db") as db, DesignArchive(root / "archive") as archive:
        run_id = db.records.start_run(1, TIER, {})
        design_id = db.records.add_design("Tiny linear attention", "test", GOOD, origin="user", run_id=run_id)
        db.records.set_archive_commit(design_id, archive.commit(design_id, "Tiny linear attention", GOOD, [], "test"))
        eval_id = db.records.begin_evaluation(design_id, run_id, "search", TIER, get_tier(TIER).version, 3)
        result = evaluate(GOOD, TIER, 3, key=db.heldout_key)  # as the workspace's own evaluations do
        assert result.ok, result.reason
        db.records.finish_evaluation(eval_id, "ok", metrics=result.metrics, log=result.log,
                                     duration_s=result.duration_s, environment=result.environment)
    return root, run_id, design_id, eval_id, result


def open_workspace(root):
    return ExperienceDB(root / "experience.db"), DesignArchive(root / "archive")


def canned(result):
    """An evaluation that returns a fixed result instead of running: for tests about the comparison."""
    return lambda code, tier, seed, key=None: replace(result, seed=seed)


def test_metric_kinds_decide_how_a_metric_is_compared():
    assert [metric_kind(m) for m in ("params", "state_size", "mqar_acc", "lm_bpb", "init_loss", "tokens_per_s",
                                     "mqar_train_s", "time_exponent", "superlinear")] == [
        "structural", "structural", "accuracy", "loss", "loss", "machine", "machine", "machine", "machine"]
    diffs = {d.metric: d.status for d in compare(
        {"params": 10, "mqar_acc": 0.50, "parity_acc": 0.5, "lm_bpb": 2.0, "tokens_per_s": 1.0, "state_size": 4},
        {"params": 10, "mqar_acc": 0.51, "parity_acc": 0.6, "lm_bpb": 2.5, "tokens_per_s": 9.0}, "smoke")}
    assert diffs == {"params": "exact", "mqar_acc": "within", "parity_acc": "differs", "lm_bpb": "differs",
                     "tokens_per_s": "informational", "state_size": "missing"}


def test_a_kernel_checks_figures_from_its_hidden_shapes_are_shown_but_not_compared():
    # Every evaluation draws the kernel check's hidden shapes afresh, so no replay can repeat them.
    recorded = {"kernel_scan_hidden_seed": 3669015335, "kernel_scan_maxerr_o": 2.2e-7, "kernel_scan_err_o": 1e-7,
                "kernel_scan_status": "ok", "kernel_scan_cases": 9, "kernel_scan_flops": 100}
    replayed = {**recorded, "kernel_scan_hidden_seed": 1502681246, "kernel_scan_maxerr_o": 2.1e-7,
                "kernel_scan_err_o": 0.9e-7}
    diffs = {d.metric: (d.kind, d.status) for d in compare(recorded, replayed, "smoke")}
    drawn = ("drawn", "informational")
    assert diffs == {"kernel_scan_hidden_seed": drawn, "kernel_scan_maxerr_o": drawn, "kernel_scan_err_o": drawn,
                     "kernel_scan_status": ("structural", "exact"), "kernel_scan_cases": ("structural", "exact"),
                     "kernel_scan_flops": ("structural", "exact")}
    failed = compare(recorded, {**replayed, "kernel_scan_status": "mismatch"}, "smoke")
    assert {d.metric: d.status for d in failed}["kernel_scan_status"] == "differs"
    assert set(TOLERANCES) >= {"check", "smoke", "quick", "full", "full-tiny"}


def test_replay_reproduces_a_recorded_evaluation_exactly_outside_the_budget(recorded):
    root, run_id, design_id, eval_id, _ = recorded
    db, archive = open_workspace(root)
    outcome = replay(db, archive, design_id)
    assert (outcome.verdict, outcome.exact, outcome.evaluation_id, outcome.seed) == ("reproduced", True, eval_id, 3)
    assert outcome.code_source.startswith("archive ")
    compared = [d for d in outcome.diffs if d.status != "informational"]
    assert {d.metric for d in compared} >= {"mqar_acc", "parity_acc", "lm_bpb", "params", "init_loss"}
    assert all(d.status == "exact" for d in compared)
    again = db.records.evaluation(outcome.replay_evaluation_id)
    assert (again.purpose, again.run_id, again.seed, again.status) == ("replay", None, 3, "ok")
    assert db.records.spent(run_id) == 1  # the replay is not a search evaluation of the run
    stored = db.provenance.latest_replay(design_id)
    assert (stored["verdict"], stored["exact"], stored["evaluation_id"]) == ("reproduced", True, eval_id)
    assert {d["metric"] for d in stored["diffs"]} == {d.metric for d in outcome.diffs}


def test_replay_says_differs_and_exits_1_when_a_metric_moved(recorded, capsys):
    root, _, design_id, eval_id, result = recorded
    db, archive = open_workspace(root)
    moved = replace(result, metrics={**result.metrics, "mqar_acc": result.metrics["mqar_acc"] + 0.3})
    outcome = replay(db, archive, design_id, eval_id, evaluate=canned(moved))
    assert outcome.verdict == "differs" and not outcome.exact
    assert {d.metric: d.status for d in outcome.diffs}["mqar_acc"] == "differs"
    within = replace(result, metrics={**result.metrics, "lm_bpb": result.metrics["lm_bpb"] * 1.01})
    outcome = replay(db, archive, design_id, eval_id, evaluate=canned(within))
    assert (outcome.verdict, outcome.exact) == ("reproduced", False)
    failed = replace(result, status="nan", reason="non-finite loss", metrics={})
    assert replay(db, archive, design_id, eval_id, evaluate=canned(failed)).verdict == "differs"
    assert [r["verdict"] for r in db.provenance.replays(design_id)][-3:] == ["differs", "reproduced", "differs"]


def test_replay_refuses_what_it_cannot_replay_as_recorded(recorded, capsys):
    root, _, design_id, eval_id, result = recorded
    db, archive = open_workspace(root)
    old = db.records.begin_evaluation(design_id, None, "search", TIER, get_tier(TIER).version - 1, 0)
    db.records.finish_evaluation(old, "ok", metrics=result.metrics)
    with pytest.raises(ReplayError, match="different protocol"):
        replay(db, archive, design_id, old, evaluate=canned(result))
    other = db.records.add_design("Other", "", GOOD + "\n# another file\n", origin="user")
    with pytest.raises(ReplayError, match="belongs to design"):
        replay(db, archive, other, eval_id)
    with pytest.raises(ReplayError, match="no finished evaluation"):
        replay(db, archive, other)
    db.records.set_archive_commit(other, archive.commit(other, "Other", "print('not the design')\n", [], "corrupt"))
    other_eval = db.records.begin_evaluation(other, None, "search", TIER, get_tier(TIER).version, 0)
    db.records.finish_evaluation(other_eval, "ok", metrics=result.metrics)
    with pytest.raises(ReplayError, match="other code than the database"):
        replay(db, archive, other, evaluate=canned(result))
    assert main(["replay", str(other), "--workspace", str(root)]) == 2
    assert "other code than the database" in capsys.readouterr().err
    assert main(["replay", "999", "--workspace", str(root)]) == 2


def test_replay_command_prints_json_and_exits_0_when_reproduced(recorded, capsys):
    root, _, design_id, eval_id, _ = recorded
    assert main(["replay", str(design_id), "--evaluation", str(eval_id), "--workspace", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "reproduced" and report["exact"] and report["evaluation_id"] == eval_id
