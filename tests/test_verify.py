"""discover verify: several seeds per design and reference, Welch intervals, recorded verdicts."""

import json
from pathlib import Path

import pytest

import evaluator
from discover.cli import main
from discover.report import leaderboard, leaderboard_table
from evaluator.stats import incomplete_beta, rank_sum_p, ranks, t_cdf, t_quantile, welch_interval
from memory import DesignArchive, ExperienceDB
from memory.verify import Entry, Stats, VerifyError, compare, verify

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
TIER = "full-tiny"


def test_t_quantiles_match_the_printed_tables():
    # Two-sided 95% critical values from any t table; fractional df arise from Welch's formula.
    for df, expected in [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (1000, 1.9623)]:
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.95, 2) == pytest.approx(2.9200, abs=1e-4)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)
    assert t_quantile(0.975, 2.5) < t_quantile(0.975, 2) and t_quantile(0.975, 2.5) > t_quantile(0.975, 3)
    assert t_cdf(0.0, 3) == 0.5 and incomplete_beta(2, 3, 0.0) == 0.0
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_welch_interval_is_the_textbook_one():
    interval = welch_interval([0.90, 0.92, 0.91], [0.80, 0.85, 0.82])
    se = ((0.01**2) / 3 + (0.025166**2) / 3) ** 0.5
    assert interval.diff == pytest.approx(0.086667, abs=1e-6)
    assert interval.df == pytest.approx(2.616, abs=1e-3)
    assert interval.high - interval.diff == pytest.approx(t_quantile(0.975, interval.df) * se, rel=1e-3)
    assert welch_interval([1.0, 1.0], [0.5, 0.5]).low == 0.5  # no spread: the interval is the point
    with pytest.raises(ValueError, match="at least 2"):
        welch_interval([1.0], [0.5, 0.6])


def test_rank_sum_test_is_exact():
    # Complete separation of 5 and 5: 2 of the C(10, 5) = 252 splits are as extreme (the textbook 0.0079).
    assert rank_sum_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert rank_sum_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)
    assert rank_sum_p([0.3, 0.9, 0.5], [0.9, 0.5, 0.3]) == 1.0  # the same values: no evidence at all
    assert rank_sum_p([1, 1], [1, 1]) == 1.0
    x, y = [0.61, 0.75, 0.70, 0.92, 0.88], [0.40, 0.72, 0.55, 0.50, 0.66]
    assert rank_sum_p(x, y) == rank_sum_p(y, x)
    assert 0.05 < rank_sum_p(x, y) < 0.1  # U = 22 of 25: two-sided exact p = 0.0556
    assert ranks([0.5, 0.1, 0.5, 0.9]) == [2.5, 1.0, 2.5, 4.0]
    with pytest.raises(ValueError):
        rank_sum_p([], [1.0])


def entry(values, failures=None, reference=False, metric="score"):
    return Entry(1 if not reference else 2, "d" if not reference else "ref", "user", reference, {}, failures or {},
                 {metric: Stats(len(values), sum(values) / len(values), None, tuple(values))})


def test_verdicts_need_the_whole_interval_on_one_side():
    reference = entry([0.50, 0.52, 0.51], reference=True)
    assert compare(entry([0.70, 0.72, 0.71]), reference, "score", 0.95).verdict == "better"
    assert compare(entry([0.30, 0.32, 0.31]), reference, "score", 0.95).verdict == "worse"
    assert compare(entry([0.40, 0.70, 0.55]), reference, "score", 0.95).verdict == "not-distinguishable"
    assert compare(entry([0.70]), reference, "score", 0.95).verdict == "insufficient"
    assert compare(entry([0.70, 0.72, 0.71], failures={2: "nan"}), reference, "score", 0.95).verdict != "better"
    lower = compare(entry([1.0, 1.1, 1.05], metric="lm_bpb"), entry([2.0, 2.1, 2.05], reference=True,
                                                                    metric="lm_bpb"), "lm_bpb", 0.95)
    assert (lower.higher_is_better, lower.verdict) == (False, "better")


def test_verify_evaluates_missing_seeds_once_records_verdicts_and_top_shows_them(tmp_path, capsys):
    with ExperienceDB(tmp_path / "experience.db") as db, DesignArchive(tmp_path / "archive") as archive:
        run_id = db.records.start_run(1, TIER, {})
        design_id = db.records.add_design("Tiny linear attention", "test", GOOD, origin="user", run_id=run_id)
        executor = evaluator.make_executor("local", workers=2)
        try:
            with pytest.raises(VerifyError, match="no scored design"):
                verify(db, archive, executor, TIER, seeds=2, references=["linear_attention"])
            with pytest.raises(VerifyError, match="unknown reference"):
                verify(db, archive, executor, TIER, design_ids=[design_id], seeds=2, references=["nope"])
            planned, done = [], []
            report = verify(db, archive, executor, TIER, design_ids=[design_id], seeds=2,
                            references=["linear_attention"], on_planned=planned.append,
                            on_done=lambda *a: done.append(a))
        finally:
            executor.cancel_all()
            executor.shutdown()
        assert planned == [4] and len(done) == 4 and (report.evaluated, report.reused) == (4, 0)
        new = [e for d in db.records.designs() for e in db.records.evaluations(d.id)]
        assert {(e.purpose, e.run_id) for e in new} == {("verify", None)} and db.records.spent(run_id) == 0
        assert {(e.seed, e.status) for e in new} == {(0, "ok"), (1, "ok")}
        assert report.metrics == ("score", "mqar_acc", "parity_acc", "lm_bpb")
        pairs = {(c.reference, c.metric) for c in report.comparisons}
        assert pairs == {("linear_attention", m) for m in report.metrics}
        assert all(c.n == 2 and c.reference_n == 2 for c in report.comparisons)
        latest = db.provenance.latest_verdict(design_id, TIER)
        assert latest["verification_id"] == report.verification_id and latest["seeds"] == [0, 1]
        assert latest["headline"]["reference"] == "linear_attention" and latest["headline"]["metric"] == "score"
        assert len(db.provenance.verdicts(design_id)) == len(report.comparisons)
        rows = leaderboard(db, TIER, 5)
        mine = next(r for r in rows if r["id"] == design_id)
        assert mine["verified"]["verdict"] == latest["headline"]["verdict"] and mine["verified"]["seeds"] == 2
        assert next(r for r in rows if r["name"] == "linear_attention")["verified"] is None
        assert leaderboard_table(rows, TIER).columns[-1].header == "verified"
    # Again through the CLI: everything is reused, nothing runs, and a second verification is recorded.
    assert main(["verify", "--tier", TIER, "--designs", str(design_id), "--seeds", "2", "--references",
                 "linear_attention", "--workspace", str(tmp_path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["evaluated"], again["reused"]) == (0, 4)
    assert again["verification_id"] == report.verification_id + 1
    assert main(["verify", "--tier", TIER, "--seeds", "1", "--workspace", str(tmp_path)]) == 2
    capsys.readouterr()
    assert main(["top", "--tier", TIER, "--workspace", str(tmp_path), "--json"]) == 0
    top = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert top[design_id]["verified"]["verdict"] in ("better", "worse", "not-distinguishable")
    # Into a pipe or a file (capsys: not a terminal) no verdict or cell is cut; the tier defaults to the run's.
    assert main(["verify", "--designs", str(design_id), "--seeds", "2", "--references", "linear_attention",
                 "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"tier {TIER} v" in out and "…" not in out
    assert all(c.verdict in out for c in report.comparisons)
    assert main(["top", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"tier {TIER}" in out and " linear_attention" in out.split("verified")[1] and "…" not in out


def test_a_design_is_judged_against_references_of_its_cost_class_or_cheaper():
    from dataclasses import replace

    from memory.verify import judged_against

    refs = [replace(entry([0.9, 0.9], reference=True), name=name, cost_class=c) for name, c in
            (("softmax_attention", "quadratic"), ("linear_attention", "constant"), ("based", "windowed"))]
    names = {c: [r.name for r in judged_against(replace(entry([0.5, 0.5]), cost_class=c), refs)]
             for c in ("constant", "windowed", "quadratic", "unproven")}
    assert names == {"constant": ["linear_attention"], "windowed": ["linear_attention", "based"],
                     "quadratic": ["softmax_attention", "linear_attention", "based"],
                     "unproven": ["softmax_attention", "linear_attention", "based"]}
    only_attention = [refs[0]]
    assert judged_against(replace(entry([0.5, 0.5]), cost_class="constant"), only_attention) == only_attention


def test_default_references_are_the_best_of_each_designs_class_and_linear_attention(tmp_path):
    from memory.verify import default_references

    spec = evaluator.get_tier("smoke")
    with ExperienceDB(tmp_path / "experience.db") as db:
        def add(name, origin, acc, cost_class):
            design_id = db.records.add_design(name, "", f"# {name}\n", origin=origin)
            eval_id = db.records.begin_evaluation(design_id, None, "seed", spec.name, spec.version, 0)
            db.records.finish_evaluation(eval_id, "ok", metrics={"mqar_acc": acc, "cost_class": cost_class},
                                         score=acc)
            return db.records.design(design_id)

        add("softmax_attention", "baseline", 0.99, "quadratic")
        add("deltanet", "baseline", 0.6, "constant")
        add("linear_attention", "baseline", 0.4, "constant")
        add("based", "baseline", 0.7, "windowed")
        constant = add("mine", "offline", 0.65, "constant")
        windowed = add("window", "offline", 0.5, "windowed")
        assert default_references(db.records, spec, [constant]) == ["deltanet", "linear_attention"]
        assert default_references(db.records, spec, [constant, windowed]) == ["deltanet", "based", "linear_attention"]
        assert default_references(db.records, spec) == ["softmax_attention", "linear_attention"]
