"""Rendered design files pass the evaluator's checks, are deterministic and hold only what they need."""

import ast
import random

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
from memory.baselines import BASELINE_POINTS
from memory.dedup import code_hash, structural_hash

ALLOWED_IMPORTS = {"torch", "math", "einops", "triton", "kernels"}
_RNG = random.Random(2024)
RANDOM_POINTS = [random_point(_RNG) for _ in range(30)]


CHECKS = CheckSpec()


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
    for absent in ("chunk_gla", "feature_map", "n_memories", "n_steps", "rotary", "A_log", "softmax"):
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


def test_rendering_an_invalid_point_is_an_error():
    with pytest.raises(ValueError, match="invalid point"):
        render({"update": "delta", "qk_norm": "none"}, "bad", "")
    with pytest.raises(ValueError, match="one non-empty line"):
        render(BASELINE_POINTS["gla"], "two\nlines", "")
