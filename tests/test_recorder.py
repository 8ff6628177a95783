"""The recording service against a real SQLite file and a real git archive: designs, evaluations,
gates and scores recorded the same way for every caller, and what a kill leaves behind."""

from pathlib import Path

import pytest

from evaluator import get_tier
from evaluator.run import EvalResult
from memory.baselines import BASELINES
from memory.recorder import Recorder

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
TIER = get_tier("smoke")


def result(status="ok", **metrics) -> EvalResult:
    return EvalResult(status, "" if status == "ok" else "a named failure", TIER.name, TIER.version, 0, metrics)


def evaluated(recorder, design_id, outcome, purpose="search", run_id=None):
    eval_id = recorder.begin(design_id, TIER, 0, purpose=purpose, run_id=run_id)
    return recorder.finish(eval_id, outcome)


def test_a_design_is_recorded_once_and_its_copies_are_duplicates(store):
    db, recorder = store
    first = recorder.design(GOOD, name="tiny", motivation="why", origin="offline")
    evaluated(recorder, first.design_id, result("nan"))
    again = recorder.design(GOOD, name="tiny again", motivation="", origin="offline")
    renamed = recorder.design(GOOD.replace("self.qkv", "self.in_proj") + "\n# note\n", name="renamed", motivation="",
                              origin="offline")
    assert not first.is_duplicate and db.records.design(first.design_id).archive_commit
    assert (again.duplicate, again.design_id) == ("exact", first.design_id)
    assert (renamed.duplicate, renamed.design_id) == ("structural", first.design_id)
    assert [d["kind"] for d in db.records.duplicates()] == ["exact", "structural"]


def test_a_child_is_committed_on_its_parent_in_the_archive(store):
    db, recorder = store
    parent = recorder.design(GOOD, name="parent", motivation="", origin="offline").design_id
    code = GOOD.replace("class Mixer", "SCALE = 2\n\n\nclass Mixer")
    child = recorder.design(code, name="child", motivation="", origin="offline", parents=(parent,)).design_id
    assert recorder.archive.parents(db.records.design(child).archive_commit) == [
        db.records.design(parent).archive_commit]


def test_the_lm_gate_names_a_failure_for_designs_but_never_for_references(store):
    db, recorder = store
    linear = recorder.baseline("linear_attention")
    reference = evaluated(recorder, linear, result(mqar_acc=0.5, lm_bpb=3.0), purpose="seed")
    design = recorder.design(GOOD, name="tiny", motivation="", origin="offline").design_id
    gated = evaluated(recorder, design, result(mqar_acc=0.9, lm_bpb=4.0))
    assert (reference.status, gated.status) == ("ok", "lm-gate") and gated.score is None
    assert "linear attention reaches 3.000" in db.records.evaluation(gated.eval_id).reason
    softmax = recorder.baseline("softmax_attention")
    assert evaluated(recorder, softmax, result(mqar_acc=0.9, lm_bpb=9.0), purpose="seed").status == "ok"


def test_scores_are_relative_to_the_references_and_rescoring_follows_them(store):
    db, recorder = store
    linear = recorder.baseline("linear_attention")
    evaluated(recorder, linear, result(mqar_acc=0.5), purpose="seed")
    design = recorder.design(GOOD, name="tiny", motivation="", origin="offline").design_id
    finished = evaluated(recorder, design, result(mqar_acc=0.5))
    assert finished.score == pytest.approx(1.0)
    softmax = recorder.baseline("softmax_attention")
    evaluated(recorder, softmax, result(mqar_acc=1.0), purpose="seed")
    assert db.records.evaluation(finished.eval_id).score == pytest.approx(1.0)  # until rescored
    assert recorder.rescore(TIER.name) == 3
    chance = TIER.chance["mqar_acc"]
    assert db.records.evaluation(finished.eval_id).score == pytest.approx((0.5 - chance) / (1.0 - chance), abs=1e-4)


def test_a_baseline_is_recorded_once_with_its_file_and_point(store):
    db, recorder = store
    first = recorder.baseline("deltanet", {"update": "delta"})
    assert recorder.baseline("deltanet") == first
    design = db.records.design(first)
    assert design.code == BASELINES["deltanet"].read_text() and design.spec == {"update": "delta"}
    assert design.origin == "baseline" and design.archive_commit


def test_a_design_in_flight_is_a_duplicate_but_one_a_kill_interrupted_is_evaluated_again(store):
    db, recorder = store
    run_id = db.records.start_run(4, TIER.name, {})
    design = recorder.design(GOOD, name="tiny", motivation="", origin="offline", run_id=run_id).design_id
    recorder.begin(design, TIER, 0, purpose="search", run_id=run_id)
    assert recorder.design(GOOD, name="again", motivation="", origin="offline", run_id=run_id).is_duplicate
    # the process dies; the next one releases the run's evaluations and finds the design unevaluated
    after_kill = Recorder(db.records, recorder.archive)
    assert after_kill.abandon_run(run_id) == 1
    assert [d.id for d in after_kill.awaiting(run_id)] == [design]
    resumed = after_kill.design(GOOD, name="again", motivation="", origin="offline", run_id=run_id)
    assert (resumed.design_id, resumed.resumed, resumed.is_duplicate) == (design, True, False)
    evaluated(after_kill, design, result(mqar_acc=0.1), run_id=run_id)
    assert after_kill.awaiting(run_id) == []
    assert after_kill.design(GOOD, name="third", motivation="", origin="offline", run_id=run_id).is_duplicate
    other_run = db.records.start_run(4, TIER.name, {})
    assert after_kill.design(GOOD, name="fourth", motivation="", origin="offline", run_id=other_run).is_duplicate


def test_abandoning_marks_only_running_evaluations_interrupted(store):
    db, recorder = store
    design = recorder.design(GOOD, name="tiny", motivation="", origin="user").design_id
    done = evaluated(recorder, design, result("timeout"))
    running = recorder.begin(design, TIER, 1, purpose="replay")
    recorder.abandon([done.eval_id, running], reason="stopped")
    assert db.records.evaluation(done.eval_id).status == "timeout"
    assert (db.records.evaluation(running).status, db.records.evaluation(running).reason) == ("interrupted", "stopped")
