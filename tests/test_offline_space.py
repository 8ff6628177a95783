"""The offline design space: canonical points, validity rules, names and the baselines as points."""

import random

import pytest

from agents.offline.space import (
    CHOICES,
    DEFAULT_POINT,
    applicable,
    canonical,
    complete,
    cost,
    describe,
    diff,
    family,
    is_valid,
    point_name,
    random_point,
    relevant,
    repair,
    validate,
)
from memory.baselines import BASELINE_POINTS, BASELINES


def test_every_baseline_design_has_a_valid_canonical_point():
    assert set(BASELINE_POINTS) <= set(BASELINES)  # a baseline the space cannot express has no point
    for name, point in BASELINE_POINTS.items():
        assert validate(point) == [], name
        assert canonical(point) == point, name


def test_baseline_points_are_distinct_and_named_distinctly():
    names = [point_name(p) for p in BASELINE_POINTS.values()]
    assert len(set(names)) == len(names)
    assert point_name(BASELINE_POINTS["gated_deltanet"]) == "gated-delta-mamba-c4"
    assert point_name(BASELINE_POINTS["mamba2"]).endswith("-swish")
    assert point_name(BASELINE_POINTS["softmax_attention"]) == "softmax-attention"
    assert point_name(BASELINE_POINTS["kda"]) == "kda-mamba-c4"
    assert point_name(BASELINE_POINTS["rwkv7"]) == "rwkv7-c4"
    assert point_name(BASELINE_POINTS["gsa"]) == "silu-gsa-lsig8"
    assert point_name(BASELINE_POINTS["loglinear_mamba2"]) == "decay-loglinear-mamba-c4-swish"
    assert point_name(BASELINE_POINTS["path_attention"]) == "path-attention"


def test_default_point_names_a_value_for_every_choice():
    assert set(DEFAULT_POINT) == {c.name for c in CHOICES}
    for choice in CHOICES:
        assert DEFAULT_POINT[choice.name] in choice.values
        assert choice.description and all(choice.values.values())


def test_canonical_keeps_only_choices_that_matter():
    additive = canonical({"update": "additive", "beta": "2sigmoid", "gate": "mamba", "delta_steps": 2,
                          "qk_norm": "none"})
    assert "beta" not in additive and "gate" not in additive and "delta_steps" not in additive
    assert canonical({"hybrid": "all", "attention": "swa32", "update": "gated", "memories": 4}) == {
        "hybrid": "all", "attention": "swa32", "attn_gate": "none"}
    assert "attn_gate" not in canonical({"hybrid": "none", "attn_gate": "sigmoid"})
    assert "attention" not in canonical({"hybrid": "none", "attention": "swa16"})
    assert relevant({"update": "gated_delta"}) == tuple(canonical({"update": "gated_delta"}))


def test_kda_keeps_the_delta_rule_choices_and_rwkv7_draws_its_own_decay_and_rate():
    kda = relevant({"update": "channel_delta"})
    assert {"delta_steps", "gate", "beta", "qk_norm"} <= set(kda)
    rwkv7 = relevant({"update": "generalized_delta"})
    assert not {"delta_steps", "gate", "beta"} & set(rwkv7)
    assert {"feature_map", "qk_norm", "key_dim", "rotary", "conv", "out_gate", "out_norm", "memories"} <= set(rwkv7)
    ignored = {"gate": "mamba", "beta": "2sigmoid", "delta_steps": 2}
    assert canonical({"update": "generalized_delta", **ignored}) == canonical({"update": "generalized_delta"})
    assert canonical({"update": "channel_delta", "gate": "logsigmoid16", "delta_steps": 2})["delta_steps"] == 2


def test_gsa_takes_a_gate_per_slot_and_no_delta_rule_or_levels():
    gsa = relevant({"update": "slots"})
    assert {"feature_map", "gate", "qk_norm", "key_dim", "rotary", "conv", "out_gate", "out_norm",
            "memories"} <= set(gsa)
    assert not {"delta_steps", "beta", "levels"} & set(gsa)
    ignored = {"beta": "2sigmoid", "delta_steps": 2, "levels": "loglinear"}
    assert canonical({"update": "slots", **ignored}) == canonical({"update": "slots"})
    assert canonical({"update": "slots", "gate": "logsigmoid8"})["gate"] == "logsigmoid8"


def test_levels_show_in_a_canonical_point_only_when_log_linear():
    """``levels`` came after the statistics were keyed on canonical forms: no earlier point shows it."""
    earlier = {name: point for name, point in BASELINE_POINTS.items() if name not in ("gsa", "loglinear_mamba2")}
    for name, point in earlier.items():
        assert "levels" not in canonical(point), name
        assert canonical({**point, "levels": "single"}) == point, name
    mamba2, loglinear = BASELINE_POINTS["mamba2"], BASELINE_POINTS["loglinear_mamba2"]
    assert canonical({**mamba2, "levels": "loglinear"}) == loglinear and loglinear["levels"] == "loglinear"
    assert diff(mamba2, loglinear) == {"levels": [None, "loglinear"]}
    # A mutation may still set it: it applies to the updates with at most a scalar decay per head.
    assert "levels" in applicable(mamba2) and "levels" not in relevant(mamba2)
    for update in ("additive", "decay_fixed", "decay"):
        assert "levels" in applicable({"update": update})
    for update in ("gated", "delta", "gated_delta", "channel_delta", "generalized_delta", "slots"):
        assert "levels" not in applicable({"update": update})
        assert canonical({"update": update, "levels": "loglinear"}) == canonical({"update": update})
    assert applicable({"hybrid": "all"}) == relevant({"hybrid": "all"})


def test_canonical_coerces_values_the_statistics_store_as_strings():
    assert canonical({"conv": "2", "memories": "4"}) == canonical({"conv": 2, "memories": 4})
    assert isinstance(canonical({"conv": "2"})["conv"], int)


def test_unknown_choices_and_values_are_reported_not_guessed():
    assert validate({"mixer": "lstm"}) == ["unknown choice 'mixer'"]
    assert "not a value" in validate({"conv": 3})[0]
    with pytest.raises(ValueError, match="unknown choice"):
        canonical({"mixer": "lstm"})


@pytest.mark.parametrize("point, fragment", [
    ({"update": "delta", "qk_norm": "none"}, "L2-normalized keys"),
    ({"update": "gated_delta", "gate": "mamba", "qk_norm": "none"}, "L2-normalized keys"),
    ({"feature_map": "taylor2", "update": "additive", "qk_norm": "none", "key_dim": "head"}, "key_dim='16'"),
    ({"feature_map": "taylor2", "update": "gated", "gate": "mamba", "qk_norm": "none", "key_dim": "16"},
     "taylor2 feature map works only"),
    ({"feature_map": "identity", "update": "additive", "qk_norm": "none", "out_norm": "none"}, "positive"),
    ({"update": "delta", "delta_steps": 2, "memories": 4}, "cost limit"),
    ({"feature_map": "taylor2", "update": "additive", "key_dim": "16", "memories": 4}, "cost limit"),
    ({"update": "channel_delta", "qk_norm": "none"}, "L2-normalized keys"),
    ({"update": "channel_delta", "delta_steps": 2, "memories": 4}, "cost limit"),
    ({"update": "generalized_delta", "memories": 4}, "cost limit"),
    ({"feature_map": "taylor2", "update": "generalized_delta", "key_dim": "16"}, "taylor2 feature map works only"),
    ({"feature_map": "taylor2", "update": "channel_delta", "key_dim": "16"}, "taylor2 feature map works only"),
    ({"update": "slots", "memories": 4}, "cost limit"),
    ({"feature_map": "taylor2", "update": "slots", "key_dim": "16"}, "taylor2 feature map works only"),
    ({"update": "decay", "levels": "loglinear", "qk_norm": "none", "out_norm": "none"}, "positive"),
    ({"update": "decay", "levels": "loglinear", "feature_map": "taylor2", "key_dim": "16", "memories": 4},
     "cost limit"),
])
def test_validity_rules_name_what_is_wrong(point, fragment):
    problems = validate(point)
    assert any(fragment in p for p in problems), problems


def test_kda_and_rwkv7_points_that_the_kernels_can_run_are_valid():
    assert is_valid({"update": "channel_delta", "gate": "logsigmoid16", "delta_steps": 2, "memories": 2})
    # RWKV-7 normalizes only its removal key, and erases instead of dividing by a denominator.
    assert is_valid({"update": "generalized_delta", "qk_norm": "none", "out_norm": "none", "feature_map": "silu"})
    assert is_valid({"update": "generalized_delta", "memories": 2, "rotary": "rope", "hybrid": "every4"})
    assert cost({"update": "generalized_delta", "memories": 2}) == 4  # its chunked form counts twice
    assert cost({"update": "channel_delta", "delta_steps": 2, "memories": 2}) == 4


def test_gsa_and_log_linear_points_that_the_kernels_can_run_are_valid():
    # GSA's softmax reads a convex mixture of its slots' values: no denominator, so any feature map goes unnormed.
    assert is_valid({"update": "slots", "qk_norm": "none", "out_norm": "none", "feature_map": "identity"})
    assert is_valid({"update": "slots", "gate": "mamba", "memories": 2, "rotary": "rope", "hybrid": "every4"})
    assert cost({"update": "slots", "memories": 2}) == 4  # two passes over key and value slots count twice
    assert cost(BASELINE_POINTS["gsa"]) == 2
    for update in ("additive", "decay_fixed", "decay"):  # measured within the unit at the CPU tiers' lengths
        assert is_valid({"update": update, "levels": "loglinear", "memories": 4, "qk_norm": "none"})
        assert cost({"update": update, "levels": "loglinear", "memories": 4}) == 4
    assert is_valid({"feature_map": "taylor2", "update": "additive", "key_dim": "16", "levels": "loglinear",
                     "qk_norm": "none", "out_norm": "none"})
    assert is_valid({"update": "gated", "gate": "logsigmoid8"}) and is_valid({"update": "decay", "gate": "logsigmoid8"})


def test_rules_do_not_apply_to_a_pure_attention_design():
    assert is_valid({"hybrid": "all", "attention": "full", "update": "delta", "qk_norm": "none"})


def test_repair_fixes_the_rules_with_an_obvious_fix():
    fixed = repair({"update": "delta", "qk_norm": "none", "delta_steps": 2, "memories": 4})
    assert is_valid(fixed)
    assert fixed["qk_norm"] == "l2" and fixed["memories"] == 2 and fixed["delta_steps"] == 2
    assert repair({"feature_map": "taylor2", "update": "additive", "key_dim": "head"})["key_dim"] == "16"
    assert repair({"update": "additive", "qk_norm": "none", "out_norm": "none"})["out_norm"] == "rmsnorm"
    assert repair({"update": "channel_delta", "qk_norm": "none"})["qk_norm"] == "l2"
    fixed = repair({"update": "generalized_delta", "qk_norm": "none", "out_norm": "none", "memories": 4})
    assert is_valid(fixed) and fixed["memories"] == 2
    assert fixed["qk_norm"] == "none" and fixed["out_norm"] == "none"
    fixed = repair({"update": "slots", "qk_norm": "none", "out_norm": "none", "memories": 4})
    assert is_valid(fixed) and fixed["memories"] == 2 and fixed["out_norm"] == "none"
    fixed = repair({"update": "decay", "levels": "loglinear", "qk_norm": "none", "out_norm": "none"})
    assert is_valid(fixed) and fixed["out_norm"] == "rmsnorm" and fixed["levels"] == "loglinear"


def test_random_points_are_valid_and_canonical():
    rng = random.Random(0)
    updates, levels, attention = set(), set(), set()
    for _ in range(300):
        point = random_point(rng)
        assert validate(point) == []
        assert canonical(point) == point
        updates.add(point.get("update"))
        levels.add(point.get("levels"))
        attention.add((point["hybrid"] == "all", point.get("attention")))
    assert {"channel_delta", "generalized_delta", "slots"} <= updates
    assert "loglinear" in levels
    assert {(True, "path"), (False, "path")} <= attention  # pure PaTH designs and PaTH layers in hybrids


def test_different_points_get_different_names():
    rng = random.Random(1)
    by_name: dict[str, dict] = {}
    for _ in range(2000):
        point = random_point(rng)
        assert by_name.setdefault(point_name(point), point) == point


def test_describe_is_a_paragraph_that_mentions_the_update_rule():
    text = describe(BASELINE_POINTS["deltanet_negeig"])
    assert "delta rule" in text and "(0, 2)" in text and "\n" not in text
    assert "Every fourth layer" in describe(BASELINE_POINTS["deltanet_hybrid"])


def test_kda_and_rwkv7_are_described_with_their_papers_and_placed_in_families_of_their_own():
    kda = describe(BASELINE_POINTS["kda"])
    assert "Kimi Delta Attention" in kda and "Moonshot AI 2025" in kda and "[0.0001, 0.01] per channel" in kda
    assert "Kimi" not in describe({**BASELINE_POINTS["kda"], "update": "gated_delta"})
    rwkv7 = describe(BASELINE_POINTS["rwkv7"])
    assert "RWKV-7" in rwkv7 and "Peng et al. 2025" in rwkv7 and "bonus" in rwkv7 and "\n" not in rwkv7
    assert "gated by swish" in describe({**BASELINE_POINTS["rwkv7"], "out_gate": "swish"})
    assert family(BASELINE_POINTS["kda"]) == "channel_delta"
    assert family({**BASELINE_POINTS["rwkv7"], "hybrid": "every2"}) == "generalized_delta+attention"
    assert point_name({"update": "generalized_delta", "qk_norm": "l2", "out_norm": "none"}) == "rwkv7-l2-c4-nonorm"
    product = {"update": "channel_delta", "gate": "logsigmoid16", "delta_steps": 2}
    assert point_name(product) == "kda-product2-lsig-c4"


def test_gsa_and_log_linear_attention_are_described_with_their_papers_and_placed_in_families_of_their_own():
    gsa = describe(BASELINE_POINTS["gsa"])
    assert "Gated Slot Attention" in gsa and "Zhang, Yang et al. 2024" in gsa and "softmax(Ks_t q_t)" in gsa
    assert "logsigmoid(W_f x_t) / 8" in gsa and "RMSNorm over all heads together" in gsa and "\n" not in gsa
    assert "not normalized" in describe({**BASELINE_POINTS["gsa"], "out_norm": "none"})
    assert "Mamba2's parametrization per slot" in describe({**BASELINE_POINTS["gsa"], "gate": "mamba"})
    assert "/ 8, the normalizer of Gated Slot Attention" in describe({"update": "gated", "gate": "logsigmoid8"})
    loglinear = describe(BASELINE_POINTS["loglinear_mamba2"])
    assert "Log-Linear Attention, Guo et al. 2025" in loglinear and "Fenwick" in loglinear
    assert set(describe(BASELINE_POINTS["mamba2"]).split(". ")) < set(loglinear.split(". "))  # and one sentence
    for name, point in BASELINE_POINTS.items():
        if name not in ("gsa", "loglinear_mamba2"):
            assert "Log-Linear" not in describe(point) and "slot" not in describe(point), name
    assert family(BASELINE_POINTS["gsa"]) == "slots"
    assert family(BASELINE_POINTS["loglinear_mamba2"]) == "loglinear_decay"
    assert family({**BASELINE_POINTS["linear_attention"], "levels": "loglinear", "hybrid": "every2"}) == (
        "loglinear_additive+attention")
    assert family(BASELINE_POINTS["mamba2"]) == "decay"
    assert point_name({"update": "slots", "gate": "mamba", "qk_norm": "none", "out_norm": "none"}) == (
        "gsa-mamba-c4-nonorm")
    assert point_name({"update": "gated", "gate": "logsigmoid8", "qk_norm": "none"}) == "gla-lsig8-c4"
    assert point_name({"update": "additive", "levels": "loglinear", "feature_map": "relu", "qk_norm": "none",
                       "out_norm": "none"}) == "relu-linear-loglinear-c4-denom"


PATH_HYBRIDS = [{**BASELINE_POINTS["deltanet_hybrid"], "attention": "path"},
                {**BASELINE_POINTS["gla"], "hybrid": "every2", "attention": "path", "attn_gate": "sigmoid"}]


def test_path_attention_is_an_attention_kind_for_pure_and_hybrid_designs():
    pure = BASELINE_POINTS["path_attention"]
    assert pure == {"hybrid": "all", "attention": "path", "attn_gate": "none"}
    assert canonical({"hybrid": "all", "attention": "path", "update": "gated", "memories": 4}) == pure
    assert applicable(pure) == relevant(pure) == ("hybrid", "attention", "attn_gate")
    assert is_valid(pure) and cost(pure) == 0 and repair(pure) == pure
    assert diff(BASELINE_POINTS["softmax_attention"], pure) == {"attention": ["full", "path"]}
    gated = {**pure, "attn_gate": "sigmoid"}
    assert point_name(gated) == "gated-path-attention" and family(pure) == family(gated) == "attention"
    for hybrid in PATH_HYBRIDS:
        recurrent = canonical({**hybrid, "hybrid": "none"})
        assert is_valid(hybrid) and canonical(hybrid)["attention"] == "path" and "attention" in relevant(hybrid)
        assert cost(hybrid) == cost(recurrent)  # the attention layers add no recurrence cost
        assert family(hybrid) == f"{family(recurrent)}+attention"
    assert point_name(PATH_HYBRIDS[0]) == "delta-c4-path-every4"
    assert point_name(PATH_HYBRIDS[1]) == "gla-lsig-khalf-gpath-every2"
    assert canonical({**BASELINE_POINTS["deltanet"], "attention": "path"}) == BASELINE_POINTS["deltanet"]
    # A name tells PaTH from every other attention kind, in a pure design and in a hybrid.
    for base in (pure, gated, *PATH_HYBRIDS):
        names = {point_name({**base, "attention": kind}) for kind in ("full", "swa16", "swa32", "swa64", "path")}
        assert len(names) == 5


def test_path_attention_is_described_with_its_paper_and_earlier_points_keep_their_descriptions():
    pure = describe(BASELINE_POINTS["path_attention"])
    assert pure.startswith("Every layer is PaTH attention (Yang et al. 2025)") and "\n" not in pure
    assert "H_s = I - beta_s w_s w_s^T" in pure and "q_i^T H_i ... H_{j+1} k_j" in pure
    assert "in place of rotary embeddings" in pure and "quadratic" in pure and "2 sigmoid" in pure
    assert "Qiu et al. 2025" in describe({**BASELINE_POINTS["path_attention"], "attn_gate": "sigmoid"})
    hybrid = describe(PATH_HYBRIDS[0])  # DeltaNet's sentences, then its PaTH layers'
    assert hybrid.startswith(describe(BASELINE_POINTS["deltanet"]) + " Every fourth layer, counting back from the "
                             "last, is PaTH attention (Yang et al. 2025)")
    assert "Qiu et al. 2025" in describe(PATH_HYBRIDS[1]) and "Qiu" not in hybrid
    for name, point in BASELINE_POINTS.items():
        if name != "path_attention":
            assert "PaTH" not in describe(point) and "path" not in point_name(point), name
            assert "path" not in canonical(point).values(), name


def test_diff_lists_changed_choices_including_ones_that_appear_or_vanish():
    changed = diff(BASELINE_POINTS["deltanet"], BASELINE_POINTS["gated_deltanet"])
    assert changed == {"update": ["delta", "gated_delta"], "gate": [None, "mamba"]}
    assert diff(BASELINE_POINTS["gated_deltanet"], BASELINE_POINTS["mamba2"])["out_gate"] == ["none", "swish"]
    assert diff(None, {"hybrid": "all", "attention": "full"}) == {"hybrid": [None, "all"],
                                                                  "attention": [None, "full"],
                                                                  "attn_gate": [None, "none"]}
    assert diff(BASELINE_POINTS["gla"], BASELINE_POINTS["gla"]) == {}


def test_complete_fills_missing_choices_from_a_given_point():
    filled = complete({"hybrid": "all", "attention": "full"}, fill=complete(BASELINE_POINTS["gla"]))
    assert filled["update"] == "gated" and filled["hybrid"] == "all"


def test_gated_attention_is_a_choice_of_the_attention_layers_only():
    assert point_name({"hybrid": "all", "attn_gate": "sigmoid"}) == "gated-softmax-attention"
    hybrid = {**BASELINE_POINTS["deltanet_hybrid"], "attn_gate": "sigmoid"}
    assert point_name(hybrid).endswith("-gattn-every4") and point_name(hybrid) != point_name(
        BASELINE_POINTS["deltanet_hybrid"])
    assert "Qiu et al. 2025" in describe(hybrid) and "Qiu" not in describe(BASELINE_POINTS["deltanet_hybrid"])
    assert "Qiu et al. 2025" in describe({"hybrid": "all", "attention": "swa32", "attn_gate": "sigmoid"})
    assert canonical({**BASELINE_POINTS["deltanet"], "attn_gate": "sigmoid"}) == BASELINE_POINTS["deltanet"]
