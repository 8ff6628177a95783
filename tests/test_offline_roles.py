"""The offline coder and analyst, and the roles as the loop gets them from make_roles."""

import pytest
import torch

from agents import Context, DesignSummary, Outcome, Proposal, make_roles
from agents.offline.coder import OfflineCoder, simplify
from agents.offline.researcher import RandomResearcher
from agents.offline.space import is_valid, point_name
from evaluator.checks import CheckSpec, build_mixers, check_model, check_recurrent, check_shapes_and_causality
from evaluator.design import load
from memory.baselines import BASELINE_POINTS

DELTANET = DesignSummary(3, "deltanet", "baseline", BASELINE_POINTS["deltanet"], 0.6,
                         {"mqar_acc": 0.7, "parity_acc": 0.5}, "ok")
GLA = DesignSummary(4, "gla", "baseline", BASELINE_POINTS["gla"], 0.4, {"mqar_acc": 0.5}, "ok")


def context(*designs: DesignSummary) -> Context:
    designs = designs or (DELTANET, GLA)
    return Context(tier="quick", iteration=1, seed=0, top=designs, baselines=designs, recent=(),
                   choice_stats={})


def proposal_for(point: dict, parents=(3,)) -> Proposal:
    return Proposal(point_name(point), "because", "plan", parents, point)


def test_make_roles_gives_the_offline_roles_under_the_name_the_loop_records_as_origin():
    roles = make_roles("offline", seed=3)
    assert roles.name == "offline"
    assert isinstance(make_roles("offline", seed=0, researcher="random").researcher, RandomResearcher)
    with pytest.raises(ValueError, match="unknown agent backend"):
        make_roles("gpt-7")
    with pytest.raises(ValueError, match="unknown offline researcher"):
        make_roles("offline", researcher="oracle")
    with pytest.raises(TypeError):
        make_roles("offline", temperature=0.7)


def test_coder_renders_the_proposal_as_attempt_one():
    point = BASELINE_POINTS["gated_deltanet"]
    draft = OfflineCoder().write(proposal_for(point), context())
    assert draft.attempt == 1 and draft.proposal.spec == point
    assert load(draft.code)[1].name == "gated-delta-mamba-c4"


def test_coder_simplifies_the_point_after_feedback_and_counts_attempts():
    coder = OfflineCoder()
    point = {"update": "delta", "memories": 4, "conv": 2}
    first = coder.write(proposal_for(point), context())
    second = coder.write(first.proposal, context(), feedback="params: layer 0 has 70000 parameters")
    assert second.attempt == 2
    assert second.proposal.spec["memories"] == 2 and second.proposal.name == "delta-c2-m2"
    assert "attempt 2 after params: memories 4 -> 2" in second.proposal.plan
    third = coder.write(second.proposal, context(), feedback="params: still too many")
    assert third.attempt == 3 and third.proposal.spec["memories"] == 1
    assert len({first.code, second.code, third.code}) == 3


def test_simplify_drops_the_option_suspected_for_the_failure():
    point = {"update": "delta", "rotary": "rope", "delta_steps": 2}
    simpler, change = simplify(point, "recurrent-mismatch")
    assert change == ("rotary", "rope", "none") and is_valid(simpler)
    plain = BASELINE_POINTS["deltanet"]
    assert simplify(plain, "nan") == (plain, None)
    simpler, change = simplify(BASELINE_POINTS["loglinear_mamba2"], "timeout")  # Fenwick states cost time
    assert change == ("levels", "loglinear", "single") and simpler == BASELINE_POINTS["mamba2"]
    simpler, change = simplify(BASELINE_POINTS["path_attention"], "timeout")  # PaTH's blockwise form is slower
    assert change == ("attention", "path", "swa64") and simpler["hybrid"] == "all"


def test_coder_refuses_a_proposal_without_a_point():
    with pytest.raises(ValueError, match="no spec"):
        OfflineCoder().write(Proposal("free-form", "m", "p", ()), context())


def test_analyst_attributes_the_score_change_to_the_changed_choices():
    child = BASELINE_POINTS["deltanet_negeig"]
    outcome = Outcome(10, proposal_for(child), "ok", "", {"mqar_acc": 0.72, "parity_acc": 0.99}, 0.75)
    analysis = make_roles("offline").analyst.analyse(outcome, context())
    assert analysis.data["changed"] == {"beta": ["sigmoid", "2sigmoid"]}
    assert analysis.data["delta_score"] == pytest.approx(0.15)
    assert analysis.data["parent_score"] == 0.6 and analysis.data["credit"] == {"beta": pytest.approx(0.15)}
    assert analysis.data["metric_deltas"]["parity_acc"] == pytest.approx(0.49)
    assert "+0.150" in analysis.text and "beta sigmoid -> 2sigmoid" in analysis.text
    assert analysis.data["best_baseline"]["name"] == "deltanet"


def test_analyst_names_the_changed_choices_of_a_failed_design():
    child = {"update": "delta", "delta_steps": 2}
    outcome = Outcome(11, proposal_for(child), "timeout", "exceeded 600 s", {}, None)
    analysis = make_roles("offline").analyst.analyse(outcome, context())
    assert analysis.data["changed"] == {"delta_steps": [1, 2]} and analysis.data["delta_score"] is None
    assert "failed with timeout" in analysis.text and "delta_steps" in analysis.text


def test_analyst_reports_which_choices_came_from_the_second_parent():
    child = {**BASELINE_POINTS["deltanet"], "key_dim": "half"}  # GLA's half-width keys
    outcome = Outcome(12, proposal_for(child, parents=(3, 4)), "ok", "", {}, 0.65)
    analysis = make_roles("offline").analyst.analyse(outcome, context())
    assert analysis.data["second_parent_id"] == 4 and analysis.data["from_second_parent"] == ["key_dim"]


def test_analyst_copes_with_designs_outside_the_space():
    outcome = Outcome(13, Proposal("llm-idea", "m", "p", (99,)), "ok", "", {}, 0.5)
    analysis = make_roles("offline").analyst.analyse(outcome, context())
    assert analysis.data["changed"] == {} and "no design-space point" in analysis.text


def test_offline_roles_write_new_designs_that_pass_the_checks():
    torch.set_num_threads(1)
    roles = make_roles("offline", seed=11)
    ctx = context()
    spec = CheckSpec()
    for _ in range(4):
        draft = roles.coder.write(roles.researcher.propose(ctx), ctx)
        module, info = load(draft.code)
        generator = torch.Generator().manual_seed(0)
        mixers = build_mixers(module.Mixer, spec)
        check_shapes_and_causality(mixers, spec, generator)
        check_model(module.Mixer, spec, generator)
        if info.has_step:
            check_recurrent(mixers, spec, generator)
