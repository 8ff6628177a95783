"""Rendered design files pass the evaluator's checks, are deterministic and hold only what they need."""

import ast
import functools
import random
import re

import pytest
import torch

from agents.offline.render import render, render_point
from agents.offline.space import point_name, random_point
from evaluator.checks import (
    CheckSpec,
    build_mixers,
    check_model,
    check_params,
    check_recurrent,
    check_shapes_and_causality,
)
from evaluator.design import load
from memory.baselines import BASELINE_POINTS, BASELINES
from memory.dedup import code_hash, structural_hash

ALLOWED_IMPORTS = {"torch", "math", "einops", "triton", "kernels"}
_RNG = random.Random(2024)
RANDOM_POINTS = [random_point(_RNG) for _ in range(30)]


CHECKS = CheckSpec()


def equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert torch.equal(actual, expected)


def alike_in_forward_and_step(ours, theirs, x: torch.Tensor, same, steps: int = 6):
    """Asserts ``same`` on the two mixers' forward outputs over x and on their outputs over its first
    ``steps`` tokens stepped from their initial states; returns those states."""
    with torch.no_grad():
        same(ours(x), theirs(x))
        a, b = ours.init_state(x.shape[0]), theirs.init_state(x.shape[0])
        for t in range(steps):
            y, a = ours.step(x[:, t], a)
            expected, b = theirs.step(x[:, t], b)
            same(y, expected)
    return a, b


def assert_passes_checks(code: str, spec: CheckSpec = CHECKS) -> None:
    torch.set_num_threads(1)
    module, info = load(code)
    generator = torch.Generator().manual_seed(0)
    mixers = build_mixers(module.Mixer, spec)
    check_params(mixers, spec)
    check_shapes_and_causality(mixers, spec, generator)
    check_model(module.Mixer, spec, generator)
    if info.has_step:
        check_recurrent(mixers, spec, generator)


@pytest.mark.parametrize("name", sorted(BASELINE_POINTS))
def test_every_baseline_point_renders_to_a_design_that_passes_the_checks(name):
    point = BASELINE_POINTS[name]
    code = render_point(point)
    assert_passes_checks(code)
    _, info = load(code)
    assert info.name == point_name(point)
    assert info.has_step  # attention layers step over a key-value cache


@pytest.mark.parametrize("index", range(len(RANDOM_POINTS)))
def test_random_valid_points_render_to_designs_that_pass_the_checks(index):
    assert_passes_checks(render_point(RANDOM_POINTS[index]))


@pytest.mark.parametrize("spec", [CheckSpec(d_model=16, n_heads=1, n_layers=4),
                                  CheckSpec(d_model=128, n_heads=4)], ids=["d16-h1-l4", "d128-h4"])
def test_random_points_pass_the_checks_at_other_model_shapes(spec):
    for point in RANDOM_POINTS[:10]:
        assert_passes_checks(render_point(point), spec)


def test_rendering_is_byte_identical_for_the_same_point():
    for point in [*BASELINE_POINTS.values(), *RANDOM_POINTS]:
        assert render_point(point) == render_point(dict(reversed(list(point.items()))))


def test_different_points_render_to_structurally_different_code():
    points = {point_name(p): p for p in [*BASELINE_POINTS.values(), *RANDOM_POINTS]}
    structures = {structural_hash(render_point(p)) for p in points.values()}
    assert len(structures) == len(points)


def test_name_and_motivation_go_into_the_module_docstring():
    code = render(BASELINE_POINTS["deltanet"], "my-delta", "Why: because the delta rule overwrites.")
    doc = ast.get_docstring(ast.parse(code))
    assert doc.splitlines()[0] == "my-delta" and doc.splitlines()[1] == ""
    assert "overwrites" in doc
    assert code_hash(code) != code_hash(render_point(BASELINE_POINTS["deltanet"]))


def test_rendered_files_import_only_what_the_contract_allows():
    for point in [*BASELINE_POINTS.values(), *RANDOM_POINTS]:
        roots = set()
        for node in ast.walk(ast.parse(render_point(point))):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots.add(node.module.split(".")[0])
        assert roots <= ALLOWED_IMPORTS


def test_generated_code_holds_only_the_branches_its_point_needs():
    delta = render_point(BASELINE_POINTS["deltanet"])
    for absent in ("chunk_gla", "feature_map", "n_memories", "n_steps", "rotary", "A_log", "softmax", "slot",
                   "lambda", "levels"):
        assert absent not in delta
    assert "chunk_delta_rule" in delta and "delta_rule_step" in delta
    hybrid = render_point(BASELINE_POINTS["deltanet_hybrid"])
    assert "softmax_attention" in hybrid and "is_attention_layer" in hybrid
    assert "def step" in hybrid and "torch.cat([keys, k], dim=2)" in hybrid  # the attention layers cache keys


def test_delta_product_steps_match_forward_with_memories_and_gates():
    point = {"update": "gated_delta", "delta_steps": 2, "gate": "logsigmoid16", "beta": "2sigmoid",
             "rotary": "rope", "memories": 2, "out_gate": "swish"}
    code = render_point(point)
    assert "n_steps = 2" in code and "n_memories = 2" in code
    assert_passes_checks(code)


KDA_AND_RWKV7_POINTS = [
    {"update": "channel_delta", "gate": "logsigmoid16", "delta_steps": 2, "beta": "2sigmoid", "memories": 2,
     "rotary": "rope", "out_gate": "swish"},
    {"update": "channel_delta", "gate": "mamba", "key_dim": "half", "out_norm": "none", "hybrid": "every2",
     "attention": "swa16"},
    {"update": "generalized_delta", "qk_norm": "l2", "feature_map": "elu_p1", "memories": 2, "rotary": "rope",
     "out_gate": "swish", "out_norm": "none", "conv": 0},
    {"update": "generalized_delta", "qk_norm": "none", "key_dim": "half", "out_gate": "swish", "hybrid": "every4"},
]


@pytest.mark.parametrize("point", KDA_AND_RWKV7_POINTS, ids=point_name)
def test_kda_and_rwkv7_points_pass_the_checks_without_a_kernel_of_their_own(point):
    code = render_point(point)
    assert "KERNELS" not in code and "triton" not in code  # no Triton kernel exists for their updates
    assert code == render_point(point, kernels=False)
    assert ("chunk_kda" in code) == (point["update"] == "channel_delta")
    assert ("chunk_rwkv7" in code) == (point["update"] == "generalized_delta")
    # RWKV-7's decay is bounded as the baseline's is, and the chunked form is told so (its float32 products)
    assert ("log_decay_floor=-math.exp(-0.5)" in code) == (point["update"] == "generalized_delta")
    for spec in (CHECKS, CheckSpec(d_model=16, n_heads=1, n_layers=4)):
        assert_passes_checks(code, spec)


@pytest.mark.parametrize("name", ["kda", "rwkv7"])
def test_the_kda_and_rwkv7_points_compute_what_their_baselines_compute(name):
    """With the baseline's weights, the rendered point gives its outputs and memory, in forward and in step."""
    torch.manual_seed(0)
    baseline = load(BASELINES[name].read_text())[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    rendered = load(render_point(BASELINE_POINTS[name]))[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    # RWKV-7's receptance is the rendered design's query; its per-channel weights are kept per head.
    weights = {re.sub(r"^r_(proj|conv)\.", r"q_\1.", key): value for key, value in baseline.state_dict().items()}
    target = rendered.state_dict()
    assert set(weights) == set(target)
    if name == "rwkv7":  # the deterministic part of the initialization, which depends on the layer's depth
        for key in ("w_lora.2.bias", "a_lora.1.bias", "k_k", "k_a", "r_k"):
            assert torch.equal(weights[key].reshape(target[key].shape), target[key]), key
    else:  # A per head in [1, 16], dt = softplus(dt_bias) per key channel in [1e-4, 1e-2]
        A, dt = rendered.A_log.exp(), torch.nn.functional.softplus(rendered.dt_bias)
        assert A.shape == (2,) and dt.shape == (64,)
        assert 1.0 - 1e-5 <= A.min() and A.max() <= 16.0 + 1e-5
        assert 1e-4 * (1 - 1e-4) <= dt.min() and dt.max() <= 1e-2 * (1 + 1e-4)
    rendered.load_state_dict({key: weights[key].reshape(value.shape) for key, value in target.items()})
    x = torch.randn(2, 37, 64, generator=torch.Generator().manual_seed(1))
    close = functools.partial(torch.testing.assert_close, rtol=1e-6, atol=1e-6)
    ours, theirs = alike_in_forward_and_step(rendered, baseline, x, close)
    close(ours["S"], theirs["S"])


def test_the_sampled_points_include_gsa_and_log_linear_points():
    assert any(point.get("update") == "slots" for point in RANDOM_POINTS)
    assert any(point.get("levels") == "loglinear" for point in RANDOM_POINTS)
    assert any(point.get("gate") == "logsigmoid8" for point in RANDOM_POINTS)


GSA_AND_LOGLINEAR_POINTS = [
    {"update": "slots", "gate": "mamba", "memories": 2, "rotary": "rope", "out_gate": "swish", "key_dim": "half"},
    {"update": "slots", "gate": "logsigmoid16", "qk_norm": "none", "out_norm": "none", "out_gate": "swish",
     "hybrid": "every2", "attention": "swa16"},
    {"update": "additive", "levels": "loglinear", "feature_map": "relu", "qk_norm": "none", "out_norm": "none",
     "memories": 2, "rotary": "rope"},
    {"update": "decay_fixed", "levels": "loglinear", "qk_norm": "none", "hybrid": "every4"},
    {"update": "decay", "levels": "loglinear", "gate": "logsigmoid8", "memories": 4, "out_gate": "swish"},
    {"feature_map": "taylor2", "update": "additive", "key_dim": "16", "levels": "loglinear", "qk_norm": "none",
     "out_norm": "none", "conv": 0},
]


@pytest.mark.parametrize("point", GSA_AND_LOGLINEAR_POINTS, ids=point_name)
def test_gsa_and_log_linear_points_pass_the_checks_without_a_kernel_of_their_own(point):
    code = render_point(point)
    assert "KERNELS" not in code and "triton" not in code  # no Triton kernel exists for their recurrences
    assert code == render_point(point, kernels=False)
    assert ("chunk_gsa" in code) == (point["update"] == "slots")
    assert ("chunk_loglinear_attn" in code) == (point.get("levels") == "loglinear")
    for spec in (CHECKS, CheckSpec(d_model=16, n_heads=1, n_layers=4)):
        assert_passes_checks(code, spec)


def test_the_gsa_point_computes_exactly_what_its_baseline_computes():
    """With the baseline's weights, the rendered point gives its outputs and slots, in forward and in step."""
    torch.manual_seed(0)
    baseline = load(BASELINES["gsa"].read_text())[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    rendered = load(render_point(BASELINE_POINTS["gsa"]))[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    weights = baseline.state_dict()
    assert set(weights) == set(rendered.state_dict())
    assert rendered.n_slots == baseline.num_slots == 32 and rendered.o_norm.eps == baseline.o_norm.eps
    rendered.load_state_dict(weights)
    x = torch.randn(2, 37, 64, generator=torch.Generator().manual_seed(1))
    ours, theirs = alike_in_forward_and_step(rendered, baseline, x, equal)
    assert torch.equal(ours["key_slots"], theirs[0]) and torch.equal(ours["value_slots"], theirs[1])


def test_the_log_linear_point_is_mamba2s_point_with_the_baselines_fenwick_levels():
    """Log-linear Mamba2 sits at the nearest point, as Mamba2 does (memory/baselines/__init__.py): the rendered
    point weighs the Fenwick levels exactly as the baseline does, and with every level weighted alike it computes
    what Mamba2's point computes, its buckets summing to that point's single memory."""
    torch.manual_seed(0)
    baseline = load(BASELINES["loglinear_mamba2"].read_text())[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    rendered = load(render_point(BASELINE_POINTS["loglinear_mamba2"]))[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    single = load(render_point(BASELINE_POINTS["mamba2"], kernels=False))[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    levels = {"lambda_proj.weight", "L"}
    assert set(rendered.state_dict()) == set(single.state_dict()) | levels
    assert rendered.n_levels == baseline.n_levels == 17 and torch.equal(rendered.L, baseline.L)
    rendered.load_state_dict({**single.state_dict(), **{key: baseline.state_dict()[key] for key in levels}})
    x = torch.randn(2, 37, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(rendered._level_weights(x), baseline._lambdas(x))
        state = rendered.init_state(2)
        for t in range(6):
            _, state = rendered.step(x[:, t], state)
        assert state["levels"].shape == (2, 2, 3, 32, 32) and state["tokens"].tolist() == [6, 6]  # bits of 6
        # Equal weights softplus(0) scale the read-out, which the norms cancel once their eps is 0.
        rendered.lambda_proj.weight.zero_()
        rendered.o_norm.eps = single.o_norm.eps = 0.0
    close = functools.partial(torch.testing.assert_close, rtol=1e-5, atol=1e-7)
    ours, theirs = alike_in_forward_and_step(rendered, single, x, close)
    close(ours["levels"].sum(2), theirs["S"])


def test_the_sampled_points_include_path_attention_designs_and_hybrids():
    assert any(point["hybrid"] == "all" and point["attention"] == "path" for point in RANDOM_POINTS)
    assert any(point["hybrid"] in ("every2", "every4") and point.get("attention") == "path" for point in RANDOM_POINTS)


PATH_POINTS = [
    {"hybrid": "all", "attention": "path", "attn_gate": "sigmoid"},
    {**BASELINE_POINTS["deltanet_hybrid"], "attention": "path"},
    {"update": "gated", "gate": "logsigmoid16", "qk_norm": "none", "key_dim": "half", "hybrid": "every2",
     "attention": "path", "attn_gate": "sigmoid"},
    {"update": "slots", "gate": "logsigmoid8", "feature_map": "silu", "qk_norm": "none", "conv": 0,
     "hybrid": "every4", "attention": "path"},
]


def _path_class(code: str) -> str:
    """The source of a design's PaTH attention class: the pure design's Mixer, or a hybrid's PathAttention."""
    start = code.index("class PathAttention(" if "class PathAttention(" in code else "class Mixer(")
    end = code.find("\ndef ", start)
    return code[start:] if end < 0 else code[start:end]


@pytest.mark.parametrize("point", PATH_POINTS, ids=point_name)
def test_path_attention_points_pass_the_checks_without_a_kernel_of_their_own(point):
    """PaTH layers run kernels.path's PyTorch forms on every device: a pure design declares no kernel, and a
    hybrid only its recurrent layer's; they carry no rotary embeddings."""
    code = render_point(point)
    layer = _path_class(code)
    assert "chunk_path_attn(q, k, v, w, beta)" in layer and "path_step(q, k, v, w, beta" in layer
    assert "rotary" not in layer and "triton" not in layer and "RotaryEmbedding" not in code
    if point["hybrid"] == "all":
        assert "KERNELS" not in code and code == render_point(point, kernels=False)
    else:
        assert "self.layer: nn.Module = PathAttention(d_model, n_heads)" in code
        assert "triton" not in render_point(point, kernels=False)
    assert ("g_proj" in layer) == (point.get("attn_gate") == "sigmoid")
    for spec in (CHECKS, CheckSpec(d_model=16, n_heads=1, n_layers=4)):
        assert_passes_checks(code, spec)


def test_the_path_point_computes_exactly_what_its_baseline_computes():
    """With the baseline's weights, the rendered point gives its outputs and key-value cache, in forward and in
    step; it even starts from the same weights at the same seed (same modules, order and initialization)."""
    torch.manual_seed(0)
    baseline = load(BASELINES["path_attention"].read_text())[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    torch.manual_seed(0)
    rendered = load(render_point(BASELINE_POINTS["path_attention"]))[0].Mixer(64, 2, layer_idx=1, n_layers=3)
    weights = baseline.state_dict()
    assert set(weights) == set(rendered.state_dict())
    assert all(torch.equal(value, rendered.state_dict()[key]) for key, value in weights.items())
    assert torch.equal(rendered.b_proj.bias, torch.zeros(2))  # beta starts at 2 sigmoid(0) = 1, as in fla
    with torch.no_grad():
        for value in rendered.state_dict().values():
            value.uniform_(-1, 1)  # the loaded weights, not the shared initialization, must make the match
    rendered.load_state_dict(weights)
    x = torch.randn(2, 37, 64, generator=torch.Generator().manual_seed(1))  # two chunks of 32 and a part
    ours, theirs = alike_in_forward_and_step(rendered, baseline, x, equal)
    assert set(ours) == set(theirs) == {"w_conv", "keys", "values"}
    assert ours["keys"].shape == (2, 2, 6, 32)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_rendering_an_invalid_point_is_an_error():
    with pytest.raises(ValueError, match="invalid point"):
        render({"update": "delta", "qk_norm": "none"}, "bad", "")
    with pytest.raises(ValueError, match="one non-empty line"):
        render(BASELINE_POINTS["gla"], "two\nlines", "")


@pytest.mark.parametrize("point", [{"hybrid": "all", "attn_gate": "sigmoid"},
                                   {"hybrid": "all", "attention": "swa16", "attn_gate": "sigmoid"},
                                   {"hybrid": "all", "attention": "path", "attn_gate": "sigmoid"},
                                   {**BASELINE_POINTS["deltanet_hybrid"], "attn_gate": "sigmoid"},
                                   {**BASELINE_POINTS["deltanet_hybrid"], "attention": "path", "attn_gate": "sigmoid"}],
                         ids=point_name)
def test_gated_attention_multiplies_each_heads_output_by_its_gate(point):
    """Gated attention passes the checks, and with the gate's weights at zero (sigmoid 1/2) computes exactly
    half of what the ungated design with the same weights computes before the output projection."""
    code = render_point(point)
    assert_passes_checks(code)
    torch.manual_seed(0)
    gated = load(code)[0].Mixer(64, 2, layer_idx=1, n_layers=2)
    plain = load(render_point({**point, "attn_gate": "none"}))[0].Mixer(64, 2, layer_idx=1, n_layers=2)
    weights = {key: value for key, value in gated.state_dict().items() if "g_proj" not in key}
    assert set(gated.state_dict()) - set(weights) and set(weights) == set(plain.state_dict())
    plain.load_state_dict(weights)
    with torch.no_grad():
        for key, value in gated.state_dict().items():
            if "g_proj" in key:
                value.zero_()
        x = torch.randn(2, 19, 64, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(gated(x), plain(x) / 2, rtol=1e-5, atol=1e-6)
        state, reference = gated.init_state(2), plain.init_state(2)
        for t in range(3):
            y, state = gated.step(x[:, t], state)
            expected, reference = plain.step(x[:, t], reference)
            torch.testing.assert_close(y, expected / 2, rtol=1e-5, atol=1e-6)
