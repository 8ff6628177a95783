"""The agents' context, built incrementally from memory: after any sequence of writes it equals a
context built from scratch, and it holds what the roles are promised (best first, failures in recent)."""

from pathlib import Path

import pytest

from evaluator import get_tier
from evaluator.run import EvalResult
from memory.context import ContextBuilder

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
TIER = get_tier("smoke")


def variant(i: int) -> str:
    return GOOD.replace("class Mixer", f"WIDTH_{i} = {i}\n\n\nclass Mixer")


def result(status="ok", **metrics) -> EvalResult:
    return EvalResult(status, "" if status == "ok" else "it broke", TIER.name, TIER.version, 0, metrics)


def fresh(db) -> ContextBuilder:
    return ContextBuilder(db.views, TIER.name, TIER.version, seed=0, top_k=3, recent_k=3)


def test_an_incremental_context_equals_one_built_from_scratch_after_every_write(store):
    db, recorder = store
    builder = fresh(db)
    checks = 0

    def check():
        nonlocal checks
        assert builder.context(checks) == fresh(db).context(checks)
        checks += 1

    check()
    linear = recorder.baseline("linear_attention", {"update": "additive"})
    seeded = recorder.begin(linear, TIER, 0, purpose="seed")
    check()
    recorder.finish(seeded, result(mqar_acc=0.4))
    check()
    ids = []
    for i, (status, acc) in enumerate([("ok", 0.6), ("nan", None), ("ok", 0.2), ("ok", 0.6), ("timeout", None)]):
        ids.append(recorder.design(variant(i), name=f"d{i}", motivation="", origin="offline",
                                   spec={"update": "delta" if i % 2 else "gated", "conv": i % 3}).design_id)
        eval_id = recorder.begin(ids[-1], TIER, 0, purpose="search")
        check()  # seen while running
        recorder.finish(eval_id, result(status, **({"mqar_acc": acc} if acc is not None else {})))
        db.records.add_analysis(ids[-1], "offline-analyst", f"analysis of d{i}")
        db.records.add_analysis(ids[-1], "offline-judge", "a judge's note is not an analysis")
        check()
    second = recorder.begin(ids[2], TIER, 1, purpose="verify")  # a later, better evaluation of d2
    recorder.finish(second, result(mqar_acc=0.9))
    other_tier = get_tier("check")
    db.records.begin_evaluation(ids[0], None, "search", other_tier.name, other_tier.version, 0)
    check()

    context = builder.context(99)
    # by the mean over seeds: d2's 0.2 and 0.9 rank below d0's and d3's 0.6; d0 before d3 on a tie (older)
    assert [d.name for d in context.top] == ["d0", "d3", "d2"]
    assert context.top[0].score == context.top[1].score > context.top[2].score
    assert [d.name for d in context.recent] == ["d4", "d3", "d2"]
    assert context.recent[0].status == "timeout" and context.recent[0].analysis == "analysis of d4"
    assert [d.name for d in context.baselines] == ["linear_attention"] and context.baselines[0].analysis is None
    assert context.choice_stats["update"]["delta"]["n"] == 2 and context.choice_stats["update"]["delta"]["fails"] == 1
    assert context.is_known(variant(3)) and context.is_known(variant(3).replace("\n\n", "\n \n"))
    assert not context.is_known(variant(7))


def test_evaluations_at_other_tiers_and_unfinished_ones_do_not_count(store):
    db, recorder = store
    design = recorder.design(GOOD, name="tiny", motivation="", origin="offline").design_id
    recorder.begin(design, get_tier("check"), 0, purpose="search")
    recorder.begin(design, TIER, 0, purpose="search")
    [summary] = fresh(db).context(0).recent
    assert (summary.status, summary.score, summary.metrics) == ("unevaluated", None, {})


def test_choice_stats_count_designs_and_average_their_best_scores(store):
    db, _ = store
    records = db.records
    for i, (name, score, status, spec) in enumerate([
            ("a", 1.0, "ok", {"update": "delta", "conv": True}), ("b", 3.0, "ok", {"update": "delta", "conv": False}),
            ("c", None, "nan", {"update": "gated", "conv": True}), ("no spec", 9.0, "ok", None)]):
        design = records.add_design(name, "", variant(i), origin="offline", spec=spec)
        eval_id = records.begin_evaluation(design, None, "search", TIER.name, TIER.version, 0)
        records.finish_evaluation(eval_id, status, score=score)
    assert fresh(db).context(0).choice_stats == {
        "conv": {"False": {"n": 1, "mean_score": 3.0, "fails": 0}, "True": {"n": 2, "mean_score": 1.0, "fails": 1}},
        "update": {"delta": {"n": 2, "mean_score": 2.0, "fails": 0}, "gated": {"n": 1, "mean_score": None, "fails": 1}},
    }


def test_choice_stats_count_a_late_choice_at_its_default_where_it_applies(store):
    """``levels`` shows in a canonical point only when log-linear; the designs that kept one state count too."""
    db, _ = store
    records = db.records
    for i, (name, score, spec) in enumerate([("single", 1.0, {"update": "decay"}),
                                             ("loglinear", 3.0, {"update": "decay", "levels": "loglinear"}),
                                             ("delta", 2.0, {"update": "delta"})]):
        design = records.add_design(name, "", variant(i), origin="offline", spec=spec)
        eval_id = records.begin_evaluation(design, None, "search", TIER.name, TIER.version, 0)
        records.finish_evaluation(eval_id, "ok", score=score)
    assert fresh(db).context(0).choice_stats["levels"] == {
        "loglinear": {"n": 1, "mean_score": 3.0, "fails": 0}, "single": {"n": 1, "mean_score": 1.0, "fails": 0}}


def test_scores_are_means_over_seeds_and_the_archive_keeps_the_best_of_each_niche(store):
    db, _ = store
    records = db.records

    def add(i, name, spec, scores, cost_class):
        design = records.add_design(name, "", variant(i), origin="offline", spec=spec)
        for seed, score in scores.items():
            eval_id = records.begin_evaluation(design, None, "search", TIER.name, TIER.version, seed)
            records.finish_evaluation(eval_id, "ok", metrics={"cost_class": cost_class}, score=score)
        return design

    delta = {"update": "delta", "hybrid": "none"}
    lucky = add(0, "lucky", delta, {0: 0.9, 1: 0.1, 2: 0.2}, "constant")  # best seed 0.9, mean 0.4
    steady = add(1, "steady", {**delta, "conv": 2}, {0: 0.6, 1: 0.6, 2: 0.6}, "constant")
    gated = add(2, "gated", {"update": "gated", "hybrid": "none"}, {0: 0.3}, "constant")
    hybrid = add(3, "hybrid", {**delta, "hybrid": "every4"}, {0: 0.5}, "quadratic")
    racing = add(4, "racing", {"update": "gated", "hybrid": "none", "conv": 2}, {0: 0.99}, "constant")
    context = fresh(db).context(0, racing=[racing])
    by_id = {d.id: d for d in context.designs()}
    assert by_id[lucky].score == pytest.approx(0.4) and by_id[lucky].seed_scores == (0.9, 0.1, 0.2)
    assert [d.id for d in context.elites] == [steady, hybrid, gated]  # one per (class, family), best mean first
    assert by_id[racing].racing and racing not in [d.id for d in (*context.top, *context.elites)]
    # the statistics take each design's mean, and leave out a design whose race is not over
    assert context.choice_stats["update"]["delta"]["mean_score"] == pytest.approx((0.4 + 0.6 + 0.5) / 3)
    assert context.choice_stats["update"]["gated"] == {"n": 1, "mean_score": 0.3, "fails": 0}


def test_a_replay_can_be_the_evaluation_shown_and_an_unscored_ok_one_is_skipped(store):
    """The best ok evaluation is shown (a replay included) while the score is the mean over seeds without
    replays; an ok evaluation without a score (nothing to rank it against) is neither."""
    db, _ = store
    design_id = db.records.add_design("d", "", variant(7), origin="offline")
    for purpose, seed, metrics, score in (("search", 0, {"mqar_acc": 0.4}, 0.4),
                                          ("search", 1, {"mqar_acc": 0.3}, None),
                                          ("replay", 0, {"mqar_acc": 0.9}, 0.9)):
        eval_id = db.records.begin_evaluation(design_id, None, purpose, TIER.name, TIER.version, seed)
        db.records.finish_evaluation(eval_id, status="ok", metrics=metrics, score=score)
    [shown] = fresh(db).context(1).top
    assert shown.score == 0.4 and shown.seed_scores == (0.4,) and shown.metrics == {"mqar_acc": 0.9}
