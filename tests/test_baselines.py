"""Every baseline design file, loaded from its path like a candidate design, honours the design contract."""

import ast

import pytest
import torch

from memory.baselines import BASELINES, DEFAULT_REFERENCE, baseline_path
from tests.baseline_modules import load_design

EXPECTED = {
    "softmax_attention", "linear_attention", "retnet", "gla", "mamba2",
    "deltanet", "gated_deltanet", "deltanet_negeig", "based", "deltanet_hybrid", "kda", "rwkv7",
    "gsa", "loglinear_mamba2", "path_attention",
}
WITH_STEP = EXPECTED  # attention (and the hybrids' attention layers) step over a key-value cache
ALLOWED_IMPORTS = {"torch", "math", "einops", "triton", "typing", "functools", "kernels"}
SIZES = [(64, 2), (128, 4), (16, 1)]  # (d_model, n_heads) used by the evaluator
HYBRIDS = {"based", "deltanet_hybrid"}
LAYERS = [(0, 1), (0, 4), (3, 4)]  # (layer_idx, n_layers): covers both kinds of layer in the hybrids
T = 70  # longer than one 64-token chunk and than the 32-token window, and not a multiple of either


def layer_cases() -> list[tuple[str, int, int, int, int]]:
    """(name, d_model, n_heads, layer_idx, n_layers); only hybrids depend on the layer's position."""
    return [
        (name, d_model, n_heads, layer_idx, n_layers)
        for name in sorted(EXPECTED)
        for d_model, n_heads in SIZES
        for layer_idx, n_layers in (LAYERS if name in HYBRIDS else [(0, 2)])
    ]


def make_mixer(name: str, d_model: int, n_heads: int, layer_idx: int = 0, n_layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    return load_design(name).Mixer(d_model, n_heads, layer_idx, n_layers)


def test_registry_lists_every_baseline_by_file_stem():
    assert set(BASELINES) == EXPECTED
    assert DEFAULT_REFERENCE in BASELINES
    for name, path in BASELINES.items():
        assert path.stem == name and path.is_file()
        assert baseline_path(name) == path


def test_unknown_baseline_is_a_key_error():
    with pytest.raises(KeyError, match="unknown baseline"):
        baseline_path("transformer-xl")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_design_file_has_name_docstring_and_only_allowed_imports(name):
    tree = ast.parse(baseline_path(name).read_text())
    docstring = ast.get_docstring(tree)
    assert docstring is not None
    title, blank, *paragraph = docstring.splitlines()
    assert title.strip() and not blank.strip() and " ".join(paragraph).strip()
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add(node.module.split(".")[0])
    assert roots <= ALLOWED_IMPORTS, roots - ALLOWED_IMPORTS
    assert hasattr(load_design(name), "Mixer")
    assert hasattr(load_design(name).Mixer, "step") == (name in WITH_STEP)


@pytest.mark.parametrize("d_model, n_heads", SIZES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_count_is_near_an_attention_layer(name, d_model, n_heads):
    for layer_idx, n_layers in LAYERS:
        mixer = make_mixer(name, d_model, n_heads, layer_idx, n_layers)
        n_params = sum(p.numel() for p in mixer.parameters())
        assert 2 * d_model**2 <= n_params <= 8 * d_model**2, (layer_idx, n_params / d_model**2)


# One thread, as evaluations run: with two, ATen may split an elementwise op such as exp differently on a
# process's first call (vectorized and scalar paths meet at the split), which moves float32 results by an ulp
# between calls whatever the inputs; bit-for-bit comparisons across calls need one split.
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name, d_model, n_heads, layer_idx, n_layers", layer_cases())
def test_forward_keeps_shape_and_is_causal(name, d_model, n_heads, layer_idx, n_layers):
    mixer = make_mixer(name, d_model, n_heads, layer_idx, n_layers)
    x = torch.randn(2, T, d_model)
    with torch.no_grad():
        y = mixer(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()
        for t in (1, 31, 64):
            x_future = x.clone()
            x_future[:, t:] = torch.randn(2, T - t, d_model) * 3
            assert torch.equal(mixer(x_future)[:, :t], y[:, :t]), f"output before {t} depends on the future"


@pytest.mark.parametrize("name, d_model, n_heads, layer_idx, n_layers", layer_cases())
def test_finite_gradients_reach_every_parameter(name, d_model, n_heads, layer_idx, n_layers):
    mixer = make_mixer(name, d_model, n_heads, layer_idx, n_layers)
    x = torch.randn(2, 40, d_model, requires_grad=True)
    (mixer(x) * torch.randn(2, 40, d_model)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for param_name, param in mixer.named_parameters():
        assert param.grad is not None, f"no gradient reaches {param_name}"
        assert torch.isfinite(param.grad).all(), f"non-finite gradient in {param_name}"
        assert param.grad.abs().sum() > 0, f"zero gradient in {param_name}"


@pytest.mark.parametrize("name, d_model, n_heads, layer_idx, n_layers",
                         [case for case in layer_cases() if case[0] in WITH_STEP])
def test_step_matches_forward(name, d_model, n_heads, layer_idx, n_layers):
    mixer = make_mixer(name, d_model, n_heads, layer_idx, n_layers)
    x = torch.randn(3, T, d_model)
    with torch.no_grad():
        expected = mixer(x)
        state = mixer.init_state(3)
        outputs = []
        for t in range(T):
            y_t, state = mixer.step(x[:, t], state)
            outputs.append(y_t)
    actual = torch.stack(outputs, dim=1)
    rel_error = ((actual - expected).norm() / expected.norm()).item()
    assert rel_error < 1e-4, rel_error


def _state_numbers(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel()
    parts = state.values() if isinstance(state, dict) else state
    return sum(_state_numbers(part) for part in parts)


@pytest.mark.parametrize("name, layer_idx, n_layers, bounded", [
    ("based", 0, 2, True), ("based", 1, 2, True), ("deltanet_hybrid", 0, 2, True), ("deltanet_hybrid", 1, 2, False),
])
def test_hybrid_states_are_bounded_except_in_full_attention_layers(name, layer_idx, n_layers, bounded):
    """BASED's Taylor memory is fixed and its window cache stops at 31 tokens; full attention's grows."""
    mixer = make_mixer(name, 64, 2, layer_idx, n_layers)
    sizes = []
    with torch.no_grad():
        state = mixer.init_state(1)
        for x_t in torch.randn(T, 1, 64):
            _, state = mixer.step(x_t, state)
            sizes.append(_state_numbers(state))
    assert (sizes[40] == sizes[-1]) == bounded, sizes


@pytest.mark.parametrize(
    "n_layers, pattern",
    [(1, "A"), (2, "DA"), (3, "DDA"), (4, "DDDA"), (8, "DDDADDDA")],
)
def test_deltanet_hybrid_puts_attention_last_and_every_fourth_layer_back(n_layers, pattern):
    module = load_design("deltanet_hybrid")
    layers = [module.Mixer(16, 1, i, n_layers).layer for i in range(n_layers)]
    kinds = "".join("A" if isinstance(layer, module.Attention) else "D" for layer in layers)
    assert kinds == pattern


def test_based_alternates_linear_and_sliding_window_layers():
    module = load_design("based")
    layers = [module.Mixer(16, 1, i, 4).layer for i in range(4)]
    assert [type(layer) for layer in layers] == [
        module.TaylorLinearAttention, module.SlidingWindowAttention,
        module.TaylorLinearAttention, module.SlidingWindowAttention,
    ]
