"""Racing: designs that could reach the top get more seeds inside the budget, and the leaderboard ranks
by the mean over seeds with its interval."""

from pathlib import Path

import pytest

from discover.report import leaderboard
from evaluator import get_tier
from memory import ExperienceDB, racing
from tests.test_loop import GOOD, config, scripted_roles

TIER, VERSION = "smoke", get_tier("smoke").version


@pytest.fixture
def db(tmp_path):
    with ExperienceDB(tmp_path / "experience.db") as db:
        yield db


def design(db, name: str, scores: dict[int, float], origin: str = "offline", run_id: int | None = None) -> int:
    design_id = db.records.add_design(name, "", f"# {name}\n", origin=origin, run_id=run_id)
    for seed, value in scores.items():
        eval_id = db.records.begin_evaluation(design_id, run_id, "search", TIER, VERSION, seed)
        db.records.finish_evaluation(eval_id, status="ok", metrics={"mqar_acc": value}, score=value)
    return design_id


def test_the_spread_is_a_prior_until_two_designs_have_several_seeds(db):
    design(db, "a", {0: 0.5, 1: 0.7})
    assert racing.spread(db.records.seed_scores(TIER, VERSION)) == racing.PRIOR_SPREAD
    design(db, "b", {0: 0.2, 1: 0.2, 2: 0.2})
    # pooled: (1 * var(a) + 2 * 0) / 3 degrees of freedom
    assert racing.spread(db.records.seed_scores(TIER, VERSION)) == pytest.approx((0.02 / 3) ** 0.5)


def test_only_a_design_whose_optimistic_bound_reaches_the_top_gets_another_seed(db):
    for i, value in enumerate((0.9, 0.85, 0.8, 0.75, 0.7)):
        design(db, f"ref{i}", {0: value - 0.1, 1: value, 2: value + 0.1}, origin="baseline")
    # the pooled spread is about 0.093; the fifth best mean among the others is 0.75
    close = design(db, "close", {0: 0.68})
    far = design(db, "far", {0: 0.6})
    done = design(db, "done", {0: 0.95, 1: 0.9, 2: 0.99})
    table = db.records.seed_scores(TIER, VERSION)
    wanted = racing.wanted(table, [close, far, done], first_seed=0)
    assert wanted == [(close, 1)]
    assert racing.wanted(table, [close], first_seed=0, busy=[close]) == []
    assert racing.wanted(table, [close], first_seed=0, seeds=1) == []


def test_the_next_seed_skips_those_taken():
    assert racing.next_seed({0, 1, 3}, 0) == 2
    assert racing.next_seed({7}, 7) == 8


def test_the_leaderboard_ranks_by_the_mean_over_seeds_and_marks_one_seed(db):
    lucky = design(db, "lucky", {0: 0.9})
    steady = design(db, "steady", {0: 0.8, 1: 0.85, 2: 0.9})
    raced = design(db, "raced", {0: 0.95, 1: 0.2, 2: 0.1})  # first seed lucky, then found out
    rows = leaderboard(db, TIER, 10)
    assert [r["id"] for r in rows] == [lucky, steady, raced]
    assert rows[0]["seeds"] == 1 and rows[0]["interval"] is None
    assert rows[1]["score"] == pytest.approx(0.85) and rows[1]["seeds"] == 3
    assert rows[1]["interval"] == pytest.approx(4.303 * 0.05 / 3 ** 0.5, rel=1e-3)


@pytest.mark.slow
def test_a_run_races_contenders_inside_its_budget(tmp_path):
    from discover.loop import run

    variant = GOOD.replace("F.elu(q) + 1, F.elu(k) + 1", "F.relu(q) + 1, F.relu(k) + 1")
    summary = run(config(tmp_path, budget=4, race_seeds=3, workers=1), roles=scripted_roles([GOOD, variant]))
    assert summary.spent == 4 and summary.extra_seeds == 2
    db = ExperienceDB(Path(tmp_path / "ws" / "experience.db"))
    searched = [d for d in db.records.designs() if d.origin != "baseline"]
    seeds = {d.name: sorted(e.seed for e in db.records.evaluations(d.id) if e.status == "ok") for d in searched}
    # two references are fewer than the top five: the first design is a contender until it has three seeds
    assert seeds == {"scripted-1": [0, 1, 2], "scripted-2": [0]}
    rows = {r["name"]: r for r in leaderboard(db, "full-tiny", 10)}
    assert rows["scripted-1"]["seeds"] == 3


def test_the_table_names_every_cost_class_shown_the_ceiling_and_the_front(db):
    from rich.console import Console

    from discover.report import leaderboard_table

    def add(name, origin, acc, cost_class, mb=None):
        design_id = db.records.add_design(name, "", f"# {name}\n", origin=origin)
        eval_id = db.records.begin_evaluation(design_id, None, "seed" if origin == "baseline" else "search", TIER,
                                              VERSION, 0)
        metrics = {"mqar_acc": acc, "cost_class": cost_class, **({"state_mb_16k": mb} if mb else {})}
        db.records.finish_evaluation(eval_id, status="ok", metrics=metrics, score=acc)

    add("softmax_attention", "baseline", 0.99, "unproven")
    add("linear_attention", "baseline", 0.4, "constant", 0.02)
    add("cheap-and-good", "offline", 0.5, "constant", 0.01)
    add("windowed", "offline", 0.3, "windowed", 0.5)
    rows = leaderboard(db, TIER, 10)
    assert {r["name"]: r["front"] for r in rows} == {"softmax_attention": True, "cheap-and-good": True,
                                                     "linear_attention": False, "windowed": False}
    console = Console(record=True, width=200)
    console.print(leaderboard_table(rows, TIER))
    text = console.export_text()
    assert "const: fixed state" in text and "window: bounded window" in text and "unproven: no recurrent form" in text
    assert "quality ceiling: softmax_attention 0.990" in text


def test_show_gives_the_mean_over_seeds_and_the_cost_class(db):
    from rich.console import Console

    from discover.inspect import render_show, show

    design_id = db.records.add_design("raced", "", "# raced\n", origin="offline")
    for seed, value in ((0, 0.9), (1, 0.5), (2, 0.7)):
        eval_id = db.records.begin_evaluation(design_id, None, "search", TIER, VERSION, seed)
        db.records.finish_evaluation(eval_id, status="ok", score=value, metrics={
            "mqar_acc": value, "cost_class": "constant", "cost_reason": "its state holds 10 numbers"})
    info = show(db, design_id)
    assert info["seeds"]["scores"] == {"0": 0.9, "1": 0.5, "2": 0.7} and info["seeds"]["mean"] == pytest.approx(0.7)
    console = Console(record=True, width=200)
    console.print(render_show(info))
    text = console.export_text()
    assert "mean over 3 seeds 0.7 ± 0.4968" in text and "cost class constant: its state holds 10 numbers" in text


def test_a_design_in_its_race_is_kept_out_of_the_agents_top(db):
    from memory.context import ContextBuilder

    lucky = design(db, "lucky", {0: 0.9})
    steady = design(db, "steady", {0: 0.5, 1: 0.6, 2: 0.55})
    builder = ContextBuilder(db.views, TIER, VERSION, seed=0)
    assert [d.id for d in builder.context(0).top] == [lucky, steady]
    assert [d.id for d in builder.context(1, racing={lucky}).top] == [steady]


def test_the_front_weighs_a_design_by_its_mean_over_seeds_not_its_luckiest_seed(db):
    def add(name, accs):
        design_id = db.records.add_design(name, "", f"# {name}\n", origin="offline")
        for seed, acc in enumerate(accs):
            eval_id = db.records.begin_evaluation(design_id, None, "search", TIER, VERSION, seed)
            db.records.finish_evaluation(eval_id, status="ok", score=acc, metrics={
                "mqar_acc": acc, "cost_class": "constant", "state_mb_16k": 0.5})
        return design_id

    add("lucky", [0.95, 0.05])
    add("steady", [0.6, 0.6])
    rows = {r["name"]: r for r in leaderboard(db, TIER, 10)}
    assert rows["steady"]["front"] and not rows["lucky"]["front"]
    assert rows["lucky"]["quality"] == pytest.approx(((0.95 + 0.05) / 2 - 1 / 128) / (1 - 1 / 128), abs=1e-4)


def test_the_front_lists_every_design_on_it_cheapest_first_with_how_to_verify(db):
    from rich.console import Console

    from discover.report import front_rows, front_table

    def add(name, origin, acc, cost_class, mb):
        design_id = db.records.add_design(name, "", f"# {name}\n", origin=origin)
        eval_id = db.records.begin_evaluation(design_id, None, "seed" if origin == "baseline" else "search", TIER,
                                              VERSION, 0)
        db.records.finish_evaluation(eval_id, status="ok", score=acc, metrics={
            "mqar_acc": acc, "cost_class": cost_class, "state_mb_16k": mb})
        return design_id

    add("softmax_attention", "baseline", 0.99, "quadratic", 16.0)
    add("linear_attention", "baseline", 0.4, "constant", 0.02)
    cheap = add("cheap-and-good", "offline", 0.5, "constant", 0.01)
    add("dominated", "offline", 0.3, "windowed", 0.5)
    rows = front_rows(db, TIER)
    assert [r["name"] for r in rows] == ["cheap-and-good", "softmax_attention"]
    console = Console(record=True, width=200)
    console.print(front_table(rows, TIER))
    text = console.export_text()
    assert f"discover verify --designs {cheap}" in text and "reference" in text
