"""Cost classes: the recurrent state measured by resuming in new processes, the class it implies, scores
against references of the same class or a cheaper one, and the quality-cost front; FLOPs per token at
long context, counted in a query process."""

from pathlib import Path

import pytest
import torch

import sandbox
from evaluator import cost, evaluate, get_tier, wire
from evaluator.measure import FLOPS_LENGTHS, Refused, Trained, fit_flops, measure_flops
from evaluator.score import quality, score
from memory.baselines import baseline_path

DESIGNS = Path(__file__).parent / "designs"
ATTENTION = (DESIGNS / "window_attention.py").read_text()
GOOD = (DESIGNS / "good_linear.py").read_text()


def attention(window: int, cache: str) -> str:
    return ATTENTION.replace("WINDOW = 0", f"WINDOW = {window}").replace('CACHE = "grow"', f'CACHE = "{cache}"')


def measured(code: str):
    """The check tier: its training length is 75, so the state is compared at 37 and 75 tokens."""
    return evaluate(code, "check", 0, key=b"cost-tests")


@pytest.mark.slow
@pytest.mark.parametrize("code, expected", [
    (GOOD, "constant"),
    (attention(0, "grow"), "quadratic"),  # a key-value cache that grows with the sequence
    (attention(16, "grow"), "windowed"),  # it grows for 16 tokens, then stays
    # The whole sequence's window allocated up front, padded with non-zeros: its size gives it away.
    (attention(75, "buffer"), "quadratic"),
    (ATTENTION.replace("    def step", "    def _step").replace("    def init_state", "    def _init_state"),
     "unproven"),
], ids=["linear", "attention", "window-16", "window-as-long-as-the-sequence", "no-recurrent-form"])
def test_the_class_comes_from_the_state_measured_across_processes(code, expected):
    result = measured(code)
    assert result.status == "ok", (result.status, result.reason)
    assert result.metrics["cost_class"] == expected, result.metrics.get("cost_reason")
    if expected != "unproven":
        assert result.metrics["state_numbers"] > 0 and result.metrics["state_mb_16k"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name, expected", [
    ("based", "windowed"),  # a constant Taylor-feature memory and a 32-token window
    ("deltanet_hybrid", "quadratic"),  # its attention layers' key-value cache grows
])
def test_the_hybrid_baselines_are_classed_by_their_state(name, expected):
    result = measured(baseline_path(name).read_text())
    assert result.status == "ok", (result.status, result.reason)
    assert result.metrics["cost_class"] == expected, result.metrics.get("cost_reason")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["hidden", "attribute"], ids=["in-the-module", "on-the-state-tensor"])
def test_a_cache_kept_outside_the_state_is_a_recurrent_mismatch(where):
    """step() matches forward() within one process by keeping the keys in the module, or as a Python
    attribute of the one-number state tensor it returns: continued in a new process from that state, it
    has forgotten everything (only tensors cross)."""
    result = measured(attention(0, where))
    assert result.status == "recurrent-mismatch", (result.status, result.reason)
    assert "new process" in result.reason


def test_growth_makes_a_state_quadratic_whatever_its_size():
    assert cost.classify(10, 100, 200, 100, 200, sequence_cache=10_000)[0] == "quadratic"
    # a buffer allocated up front fills with non-zeros as the sequence goes
    assert cost.classify(200, 200, 200, 100, 200, sequence_cache=10_000)[0] == "quadratic"


def test_a_state_as_large_as_attentions_cache_is_quadratic_at_that_length():
    assert cost.classify(500, 500, 500, 500, 500, sequence_cache=500)[0] == "quadratic"
    assert cost.classify(499, 499, 499, 499, 499, sequence_cache=500)[0] == "constant"


def test_a_state_that_grows_then_stops_is_windowed():
    assert cost.classify(10, 300, 300, 300, 300, sequence_cache=1000)[0] == "windowed"
    # a shrinking state is judged by its largest measured size
    assert cost.classify(10, 300, 290, 300, 290, sequence_cache=1000)[0] == "windowed"


def test_the_state_at_16k_extends_growth_and_keeps_a_bounded_state():
    assert cost.state_bytes_at(16384, 64, 1000, 1000, "constant") == 1000
    assert cost.state_bytes_at(16384, 64, 1000, 2000, "quadratic") == pytest.approx(2000 + 1000 / 32 * (16384 - 64))
    assert cost.state_bytes_at(16384, 64, 2000, 2000, "quadratic") == pytest.approx(2000 * 16384 / 64)


TIER = get_tier("smoke")
REFERENCES = {
    "softmax_attention": [{"mqar_acc": 0.99, "cost_class": "unproven"}],
    "linear_attention": [{"mqar_acc": 0.41, "cost_class": "constant"}, {"mqar_acc": 0.45, "cost_class": "constant"}],
    "swa": [{"mqar_acc": 0.6, "cost_class": "windowed"}],
}


def test_a_constant_state_design_is_scored_against_constant_state_references():
    design = {"mqar_acc": 0.43, "cost_class": "constant"}
    assert score(design, TIER, REFERENCES) == pytest.approx((0.43 - 1 / 128) / (0.43 - 1 / 128), abs=1e-3)


def test_a_windowed_design_faces_windowed_and_cheaper_references():
    design = {"mqar_acc": 0.6, "cost_class": "windowed"}
    assert score(design, TIER, REFERENCES) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("cost_class", ["quadratic", "unproven", None])
def test_attention_in_disguise_faces_attention(cost_class):
    design = {"mqar_acc": 0.99, **({"cost_class": cost_class} if cost_class else {})}
    assert score(design, TIER, REFERENCES) == pytest.approx(1.0, abs=1e-3)
    assert score({**design, "mqar_acc": 0.5}, TIER, REFERENCES) < 0.6


def test_without_a_reference_of_its_class_or_cheaper_a_design_faces_all_of_them():
    only_attention = {"softmax_attention": REFERENCES["softmax_attention"]}
    assert score({"mqar_acc": 0.5, "cost_class": "constant"}, TIER, only_attention) < 0.6


def test_quality_is_absolute_from_chance_to_perfect():
    assert quality({"mqar_acc": 1 / 128}, TIER) == 0
    assert quality({"mqar_acc": 1.0}, TIER) == 1
    assert quality({}, TIER) is None


def test_the_front_keeps_what_no_other_point_beats_on_both():
    points = [(0.9, 16.0), (0.5, 0.1), (0.4, 0.2), (0.9, 32.0), (0.6, None), (None, 0.01), (0.5, 0.1)]
    assert cost.front(points) == [True, True, False, False, False, False, True]


def test_a_state_crosses_the_wire_with_its_structure():
    state = {"convs": [torch.zeros(2, 3), None], "mixers": [(torch.ones(2, 4), torch.tensor(7)), {"s": torch.eye(2)}],
             3: [torch.arange(3)]}
    back = wire.decode_tree(wire.encode_tree(state), "state")
    assert isinstance(back["mixers"][0], tuple) and isinstance(back["convs"], list)
    assert back["convs"][1] is None and torch.equal(back["mixers"][1]["s"], torch.eye(2))
    assert back["mixers"][0][1].shape == () and int(back["mixers"][0][1]) == 7 and torch.equal(back[3][0],
                                                                                              torch.arange(3))


@pytest.mark.parametrize("sent", [
    {"set": []}, {"tensor": {"dtype": "object", "shape": [1], "data": ""}}, [1, 2], {"tuple": [{"list": 3}]},
    {"dict": [[1.5, None]]}, {"tensor": {"dtype": "float32", "shape": [4], "data": "AAAA"}},
])
def test_a_malformed_state_is_a_wire_error(sent):
    with pytest.raises(wire.WireError):
        wire.decode_tree(sent, "state")


def test_a_state_nested_too_deep_or_holding_other_objects_cannot_be_sent():
    deep = torch.zeros(1)
    for _ in range(wire.MAX_TREE_DEPTH + 2):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.encode_tree(deep)
    with pytest.raises(wire.WireError):
        wire.encode_tree((torch.zeros(1), "a string"))


# -- FLOPs per token at long context, counted in a query process ---------------------------------------

@pytest.mark.slow
def test_flops_at_long_context_grow_with_the_context_for_attention_only():
    """At the check model's shape softmax attention's FLOPs per token are 1.7e5 + 512*T (its scores), so
    16k costs 3.8 times 4k; linear attention's are the same at any length."""
    figures = {}
    for name in ("softmax_attention", "linear_attention"):
        result = measured(baseline_path(name).read_text())
        assert result.status == "ok", (result.status, result.reason)
        assert "within" in result.metrics["flops_reason"], result.metrics["flops_reason"]
        figures[name] = result.metrics["flops_16k"] / result.metrics["flops_4k"]
        assert result.metrics["flops_4k"] > 0
    assert figures["softmax_attention"] > 3.0
    assert figures["linear_attention"] < 1.3


def fake_query_job(flops=lambda length: 1000 * length + 3 * length * length, differ: bool = False):
    """A query job's runner that answers every query with zeros, and a flops query with ``flops(length)``
    (its top log-probabilities off by one when ``differ``)."""
    seen = []

    def run_job(job: sandbox.Job) -> sandbox.ProcessResult:
        seen.append(job)
        answers = []
        for query in job.payload["queries"]:
            rows, length = query["tokens"].shape
            counted = query["mode"] == "flops"
            answer = {"argmax": wire.encode(torch.zeros(rows, length, dtype=torch.int32)),
                      "top": wire.encode(torch.full((rows, length), -1.0 if counted and differ else 0.0))}
            answers.append({**answer, "flops": flops(length)} if counted else answer)
        return sandbox.ProcessResult("returned", value={"answers": answers})

    run_job.seen = seen
    return run_job


def flops_of(run_job) -> dict:
    trained = Trained({}, {"check": ({}, [])}, sandbox.ProcessResult("returned"))
    metrics = measure_flops(run_job, "", get_tier("check"), trained, b"flops-tests", 0)
    assert len(run_job.seen) == 1
    return metrics


def test_flops_are_asked_of_one_process_and_fitted_as_linear_plus_quadratic():
    run_job = fake_query_job()
    metrics = flops_of(run_job)
    [job] = run_job.seen
    modes = sorted((q["mode"], q["tokens"].shape[1]) for q in job.payload["queries"])
    assert modes == sorted((mode, n) for n in FLOPS_LENGTHS for mode in ("flops", "forward"))
    assert metrics["flops_4k"] == 1000 + 3 * 4096 and metrics["flops_16k"] == 1000 + 3 * 16384
    assert "within" in metrics["flops_reason"]


def test_counts_not_linear_plus_quadratic_are_extended_and_said_to_be():
    metrics = flops_of(fake_query_job(lambda n: {256: 2000, 512: 100, 1024: 2000}[n] * n))
    assert "not a + b*T" in metrics["flops_reason"] and metrics["flops_4k"] > 0


def test_the_fit_never_goes_negative():
    a, b, _ = fit_flops(FLOPS_LENGTHS, [300.0, 200.0, 100.0])  # fewer per token at length: a constant
    assert (a, b) == (200.0, 0.0)
    a, b, _ = fit_flops(FLOPS_LENGTHS, [1.0, 100.0, 400.0])  # steeper than a line through the origin
    assert a == 0.0 and b > 0
    assert fit_flops(FLOPS_LENGTHS, [0.0, 0.0, 0.0]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("count", [-1, 1.5, True, "1000", None, [1000], 1 << 70])
def test_a_malformed_flops_count_is_refused(count):
    with pytest.raises(Refused) as refused:
        flops_of(fake_query_job(lambda n: count))
    assert refused.value.status == "protocol" and "flops" in refused.value.reason


def test_a_flops_answer_without_its_outputs_is_refused():
    def run_job(job):
        return sandbox.ProcessResult("returned", value={"answers": [{"flops": 5} for _ in job.payload["queries"]]})

    with pytest.raises(Refused) as refused:
        flops_of(run_job)
    assert refused.value.status == "protocol"


def test_outputs_that_change_while_counted_are_inconsistent():
    with pytest.raises(Refused) as refused:
        flops_of(fake_query_job(differ=True))
    assert refused.value.status == "inconsistent" and "counted" in refused.value.reason


@pytest.mark.slow
def test_attention_hidden_from_the_flop_counter_pays_for_it_in_memory():
    """Attacker's pass on the FLOPs figures: attention whose scores and read-out are element-wise products
    and sums (no matrix product torch's counter knows) would count as if it were linear. Written that way
    it materializes a T x T x d tensor: at the scaling probe's 4096 tokens that is 8 GiB, past the tier's
    memory limit, so the evaluation ends in a named failure instead of a flattering figure. (A cheaper
    hiding, such as numpy, stays possible: the FLOPs are information, never scored.)"""
    hidden = ATTENTION.replace("scores = (q @ k.transpose(1, 2))", "scores = (q.unsqueeze(2) * k.unsqueeze(1)).sum(-1)")
    hidden = hidden.replace("torch.softmax(scores, dim=-1) @ v", "(torch.softmax(scores, dim=-1).unsqueeze(-1) * "
                                                                   "v.unsqueeze(1)).sum(2)")
    assert hidden.count(".sum(") >= ATTENTION.count(".sum(") + 2
    result = measured(hidden)
    assert result.status == "oom", (result.status, result.reason)
    assert "answering queries" in result.reason
