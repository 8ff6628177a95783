"""The metric registry: every metric an evaluation reports has an entry, and the entries agree with the code."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.llm.views import PROMPT_METRICS
from agents.offline.analyst import REPORTED_METRICS
from evaluator import TIERS, evaluate, metrics
from evaluator.metrics import METRICS, display_order, format_value, kind, metric

GOOD = (Path(__file__).parent / "designs" / "good_linear.py").read_text()
TIER = "full-tiny"  # every task of every tier, at a size a CPU runs in seconds


@pytest.fixture(scope="module")
def reported() -> set[str]:
    """The metric names real evaluations report: a design with a recurrent form at a tier with every task,
    plus what a design that declares kernels adds."""
    from evaluator.checks import check_kernels
    from kernels.harness.check import KernelReport

    task_types = {type(task) for tier in TIERS.values() for task in tier.tasks}
    assert task_types <= {type(task) for task in TIERS[TIER].tasks}, "a tier runs a task the fixture's tier lacks"
    result = evaluate(GOOD, TIER, 0)
    assert result.ok, result.reason
    declared, failure = check_kernels(SimpleNamespace(KERNELS=[]), "", TIERS[TIER].checks, 0)
    assert failure is None
    return {*result.metrics, *declared, *KernelReport("scan", flops=1, bytes=1, errors={"o": 0.0},
                                                     max_errors={"o": 0.0}).figures()}


def test_every_metric_an_evaluation_reports_has_an_entry(reported):
    kernel_figures = {name for name in reported if name.startswith("kernel_")}  # one set per declared kernel
    assert kernel_figures and reported - kernel_figures <= set(METRICS)
    assert set(METRICS) - reported == set(), "the registry lists a metric no evaluation reports"


def test_every_reported_metric_has_one_of_the_kinds_a_replay_compares_by(reported):
    assert {kind(name) for name in reported} <= set(metrics.KINDS)


def test_an_unknown_metric_gets_an_entry_from_its_name():
    assert [kind(n) for n in ("copy_acc", "val_loss", "test_bpb", "warmup_s", "loss_s", "widgets")] == [
        "accuracy", "loss", "loss", "machine", "machine", "structural"]
    unknown = metric("val_loss")
    assert (unknown.name, unknown.label, unknown.higher_is_better, unknown.chance, unknown.scored) == (
        "val_loss", "val_loss", False, None, False)
    assert metric("copy_acc").higher_is_better and metric("copy_acc").display(0.123456) == "0.1235"


def test_scores_and_chance_levels_agree_with_the_tiers():
    scored = {name for tier in TIERS.values() for name in tier.score_weights}
    assert {name for name, m in METRICS.items() if m.scored} == scored
    for name in scored:
        assert metric(name).kind == "accuracy" and metric(name).higher_is_better
        chances = {tier.chance[name] for tier in TIERS.values() if name in tier.chance}
        # a chance level that differs between tiers (MQAR's depends on the vocabulary) belongs to the tier
        assert metric(name).chance == (chances.pop() if len(chances) == 1 else None), name


def test_views_show_registered_metrics_and_prompts_only_reproducible_ones():
    # the agents' lists live with the agents (which may not import the evaluator), checked here
    for view in (metrics.SUMMARY, metrics.LEADERBOARD, metrics.REFERENCES, metrics.LIVE, PROMPT_METRICS,
                 REPORTED_METRICS, metrics.GATE):
        assert set(view) <= set(METRICS) and len(set(view)) == len(view)
    # prompts (agents.llm.views, which may not import the evaluator) show only what a seeded evaluation
    # reproduces exactly, so the same memory renders the same prompt and the reply cache can replay a run
    assert all(metric(name).kind != "machine" for name in (*PROMPT_METRICS, *REPORTED_METRICS))
    assert all(not metric(name).scored and not metric(name).higher_is_better for name in metrics.GATE)
    labels = [m.label for m in METRICS.values()]
    assert len(set(labels)) == len(labels)


def test_listings_show_the_summary_first_then_the_rest_by_name():
    assert display_order(["zeta", "lm_bpb", "init_loss", "mqar_acc", "lm_bpb"]) == [
        "mqar_acc", "lm_bpb", "init_loss", "zeta"]
    assert list(METRICS) == display_order(METRICS)
    assert [metric("tokens_per_s").display(12345.6), metric("lm_bpb").display(2.34567), format_value(None),
            format_value(3), format_value(True)] == ["12346", "2.346", "—", "3", "True"]


def test_the_registry_loads_without_torch():
    code = "import sys, evaluator.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_prompts_give_cost_as_measured_not_as_reported():
    from agents.llm.views import metrics_text

    text = metrics_text({"mqar_acc": 0.5, "cost_class": "constant", "state_kb": 9.5, "flops_16k": 204800,
                         "state_size": 123, "flops_per_token": 7, "tokens_per_s": 1e5})
    assert text == "mqar_acc 0.5, cost_class constant, state_kb 9.5, flops_16k 204,800"


def test_thresholds_are_named_once_and_judge_registered_metrics():
    from evaluator import cost, measure, score

    assert all(t.metric in METRICS and t.description for t in metrics.THRESHOLDS.values())
    # the modules that judge by them read them from the registry
    assert score.LM_GATE_MARGIN == metrics.threshold("lm_gate_margin")
    assert score.LEAK_SUSPECT == metrics.threshold("leak_suspect")
    assert (measure.SUPERLINEAR_TIME, measure.SUPERLINEAR_MEMORY) == (
        metrics.threshold("superlinear_time"), metrics.threshold("superlinear_memory"))
    assert cost.GROWTH == metrics.threshold("state_growth") and measure.FLOPS_FIT == metrics.threshold("flops_fit")
