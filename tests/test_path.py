"""PaTH attention (kernels.path) and the PaTH baseline.

The ground truth is the masked form with the Householder products multiplied out as K x K matrices,
in float64. The blockwise form must match it in value and gradients, the token loop (and the cache
it leaves, also when stepping resumes from a state or continues after the blockwise form) in value.
Special cases pin the definition: beta = 0 is plain causal softmax attention; a fixed w with beta = 2
is a reflection that cancels in pairs; a single transform reaches exactly the pairs it lies between
(j < s <= i), and two transforms apply in path order. Worst errors measured (relative RMS): ~4e-16 in
float64 outputs and ~1e-15 in float64 gradients; ~3e-6 in float32 with beta near 2 and nearly
parallel w, so the thresholds below leave wide margins while a wrong transform or order shows as an
error of order 1e-2 or more.
"""

import pytest
import torch
import torch.nn.functional as F

from kernels.attention import softmax_attention
from kernels.path import chunk_path_attn, empty_path_state, naive_path_attn, naive_recurrent_path_attn, path_step
from kernels.path.chunk import CHUNK_SIZE
from kernels.utils import rel_rms_error
from tests.baseline_modules import load_design, step_all

B, H, K, V = 2, 2, 6, 10  # head sizes not powers of two
EXACT = 1e-12  # float64 against float64
GRAD_EXACT = 1e-10  # float64 gradients
FORWARD_TOL = 2e-5  # float32 against float64
GRAD_TOL = 1e-4  # float32 gradients
LENGTHS = [1, 2, 7, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 5, 100]
INPUT_NAMES = ("q", "k", "v", "w", "beta")

pytestmark = pytest.mark.usefixtures("one_thread")


def make_inputs(T: int, seed: int = 0, beta_range: tuple[float, float] = (0.0, 2.0)) -> dict:
    """float64 leaves q, k, v, w and beta in beta_range; w is normalized inside ``args``, as a layer does."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    low, high = beta_range
    x = {"q": randn(B, H, T, K), "k": randn(B, H, T, K), "v": randn(B, H, T, V), "w": randn(B, H, T, K),
         "beta": low + (high - low) * torch.rand(B, H, T, generator=gen, dtype=torch.float64)}
    return {name: t.requires_grad_() for name, t in x.items()}


def args(x: dict, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    q, k, v, w, beta = (x[name] for name in INPUT_NAMES)
    return [t.to(dtype) for t in (q, k, v, F.normalize(w, dim=-1), beta)]


def chunked(*a, **kw) -> torch.Tensor:
    return chunk_path_attn(*a, **kw)[0]


def recurrent(*a, **kw) -> torch.Tensor:
    return naive_recurrent_path_attn(*a, **kw)[0]


FORMS = {"naive": naive_path_attn, "chunk": chunked, "chunk4": lambda *a: chunked(*a, chunk_size=4),
         "recurrent": recurrent}


def close(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> bool:
    """Relative RMS error below tol, or both zero to rounding (the gradients of w and beta at T = 1,
    where no transform lies between any key and query)."""
    if expected.abs().max() == 0:
        return actual.abs().max() < tol
    return rel_rms_error(actual, expected) < tol


# --- the three forms agree -------------------------------------------------------------------------


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("chunk_size", [4, CHUNK_SIZE])
@pytest.mark.parametrize("dtype, tol, grad_tol", [(torch.float64, EXACT, GRAD_EXACT),
                                                  (torch.float32, FORWARD_TOL, GRAD_TOL)], ids=["f64", "f32"])
def test_chunked_form_matches_the_naive_form_in_value_and_gradients(T, chunk_size, dtype, tol, grad_tol):
    x = make_inputs(T, seed=T + chunk_size)
    expected = naive_path_attn(*args(x))
    actual = chunked(*args(x, dtype), chunk_size=chunk_size)
    assert actual.dtype == dtype
    assert rel_rms_error(actual, expected) < tol
    grad_out = torch.randn_like(expected)
    grads = torch.autograd.grad((expected * grad_out).sum(), list(x.values()))
    chunk_grads = torch.autograd.grad((actual * grad_out.to(dtype)).sum(), list(x.values()))
    for name, got, want in zip(x, chunk_grads, grads):
        assert close(got, want, grad_tol), (name, rel_rms_error(got, want))


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 64])
def test_any_chunk_size_is_exact(chunk_size):
    x = make_inputs(23, seed=chunk_size)
    assert rel_rms_error(chunked(*args(x), chunk_size=chunk_size), naive_path_attn(*args(x))) < EXACT


@pytest.mark.parametrize("T", LENGTHS)
def test_token_loop_matches_the_naive_form_and_leaves_the_chunked_forms_cache(T):
    x = make_inputs(T, seed=T)
    expected = naive_path_attn(*args(x))
    actual, (keys, values) = naive_recurrent_path_attn(*args(x), output_final_state=True)
    assert rel_rms_error(actual, expected) < EXACT
    assert keys.shape == (B, H, T, K) and values.shape == (B, H, T, V)
    _, (chunk_keys, chunk_values) = chunk_path_attn(*args(x), output_final_state=True, chunk_size=4)
    assert rel_rms_error(chunk_keys, keys) < EXACT and torch.equal(chunk_values, values)


@pytest.mark.parametrize("T, cut", [(2, 1), (40, 1), (40, 17), (70, CHUNK_SIZE), (70, 69)])
def test_stepping_resumes_from_a_cache_of_the_token_loop_or_of_the_chunked_form(T, cut):
    """The cache after ``cut`` tokens is the whole memory: continuing from it equals the naive form."""
    x = make_inputs(T, seed=cut)
    a = args(x)
    expected = naive_path_attn(*a)
    head = [t[:, :, :cut] for t in a]
    tail = [t[:, :, cut:] for t in a]
    for prefill in (naive_recurrent_path_attn, lambda *h, **kw: chunk_path_attn(*h, chunk_size=8, **kw)):
        first, state = prefill(*head, output_final_state=True)
        rest, _ = naive_recurrent_path_attn(*tail, initial_state=state)
        assert rel_rms_error(torch.cat([first, rest], dim=2), expected) < EXACT


def test_step_follows_the_definition():
    """One step written out: every cached key moves through H_t = I - beta_t w_t w_t^T, then k_t joins."""
    gen = torch.Generator().manual_seed(3)
    n = 5
    keys, values = torch.randn(B, H, n, K, generator=gen, dtype=torch.float64), torch.randn(
        B, H, n, V, generator=gen, dtype=torch.float64)
    q, k, w = (torch.randn(B, H, K, generator=gen, dtype=torch.float64) for _ in range(3))
    v, beta = torch.randn(B, H, V, generator=gen, dtype=torch.float64), torch.rand(B, H, generator=gen,
                                                                                    dtype=torch.float64) * 2
    o, (new_keys, new_values) = path_step(q, k, v, w, beta, (keys, values), scale=0.5)
    for b in range(B):
        for h in range(H):
            transform = torch.eye(K, dtype=torch.float64) - beta[b, h] * torch.outer(w[b, h], w[b, h])
            keys_expected = torch.cat([keys[b, h] @ transform.T, k[b, h, None]])
            torch.testing.assert_close(new_keys[b, h], keys_expected)
            torch.testing.assert_close(new_values[b, h], torch.cat([values[b, h], v[b, h, None]]))
            weights = torch.softmax(0.5 * keys_expected @ q[b, h], dim=0)
            torch.testing.assert_close(o[b, h], weights @ new_values[b, h])
    empty = empty_path_state(B, H, K, V, q)
    assert empty[0].shape == (B, H, 0, K) and empty[1].shape == (B, H, 0, V) and empty[0].dtype == torch.float64


# --- special cases that pin the definition -----------------------------------------------------------


def attention_with_logits(logits: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax of given (unscaled) logits (B, H, T, T) over v, at the default scale K^-1/2."""
    T = logits.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return (K**-0.5 * logits).masked_fill(~causal, float("-inf")).softmax(-1) @ v


@pytest.mark.parametrize("form", list(FORMS))
def test_zero_beta_is_plain_causal_softmax_attention(form):
    x = make_inputs(2 * CHUNK_SIZE + 3, seed=4, beta_range=(0.0, 0.0))
    q, k, v, w, beta = args(x)
    assert rel_rms_error(FORMS[form](q, k, v, w, beta), softmax_attention(q, k, v)) < EXACT


@pytest.mark.parametrize("form", list(FORMS))
def test_a_fixed_reflection_cancels_in_pairs(form):
    """w_s = u for every s and beta = 2: H_s = R, a reflection with R^2 = I, so key j reaches query i
    as R^(i - j) k_j: itself at even distances, reflected at odd ones."""
    T = CHUNK_SIZE + 9
    x = make_inputs(T, seed=5, beta_range=(2.0, 2.0))
    q, k, v, w, beta = args(x)
    w = w[:, :, :1].expand(B, H, T, K)
    R = torch.eye(K, dtype=torch.float64) - 2 * w[:, :, 0, :, None] * w[:, :, 0, None, :]  # (B, H, K, K)
    distance = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    logits = torch.where(distance % 2 == 0, q @ k.transpose(-1, -2), q @ (k @ R.transpose(-1, -2)).transpose(-1, -2))
    assert rel_rms_error(FORMS[form](q, k, v, w, beta), attention_with_logits(logits, v)) < EXACT


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("s", [0, 1, 3, 4, 5, 13])
def test_one_transform_reaches_exactly_the_pairs_it_lies_between(form, s):
    """beta = 0 everywhere but at token s: query i sees key j through H_s exactly when j < s <= i.
    At s = 0 nothing lies between (j < 0 is empty): an H_j at the key's own position, or a missing H_i
    at the query's, fails here; chunk4 puts s at and next to chunk borders."""
    T = 14
    x = make_inputs(T, seed=6 + s)
    q, k, v, w, beta = args(x)
    beta = torch.zeros_like(beta)
    beta[:, :, s] = 1.7
    H_s = torch.eye(K, dtype=torch.float64) - 1.7 * w[:, :, s, :, None] * w[:, :, s, None, :]  # (B, H, K, K)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    logits = torch.where((j < s) & (s <= i), q @ H_s @ k.transpose(-1, -2), q @ k.transpose(-1, -2))
    expected = attention_with_logits(logits, v)
    assert rel_rms_error(FORMS[form](q, k, v, w, beta), expected) < EXACT
    if s > 0:
        assert rel_rms_error(softmax_attention(q, k, v), expected) > 1e-2  # the transform is really used


@pytest.mark.parametrize("form", list(FORMS))
def test_transforms_apply_in_path_order(form):
    """Two transforms, at tokens 2 and 6: keys before 2 reach queries from 6 on as q^T H_6 H_2 k (H_2
    first, nearest the key). The reversed product H_2 H_6 differs clearly, so this would fail for it."""
    T = 11
    x = make_inputs(T, seed=7)
    q, k, v, w, beta = args(x)
    beta = torch.zeros_like(beta)
    beta[:, :, 2], beta[:, :, 6] = 1.3, 1.9
    eye = torch.eye(K, dtype=torch.float64)
    H2 = eye - 1.3 * w[:, :, 2, :, None] * w[:, :, 2, None, :]
    H6 = eye - 1.9 * w[:, :, 6, :, None] * w[:, :, 6, None, :]
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]

    def expected(both: torch.Tensor) -> torch.Tensor:
        logits = q @ k.transpose(-1, -2)
        logits = torch.where((j < 2) & (2 <= i) & (i < 6), q @ H2 @ k.transpose(-1, -2), logits)
        logits = torch.where((2 <= j) & (j < 6) & (6 <= i), q @ H6 @ k.transpose(-1, -2), logits)
        logits = torch.where((j < 2) & (6 <= i), q @ both @ k.transpose(-1, -2), logits)
        return attention_with_logits(logits, v)

    actual = FORMS[form](q, k, v, w, beta)
    assert rel_rms_error(actual, expected(H6 @ H2)) < EXACT
    assert rel_rms_error(actual, expected(H2 @ H6)) > 1e-2


def test_float32_stays_accurate_with_reflections_and_nearly_parallel_w():
    """beta near 2 and w nearly parallel within and across chunks: the UT inverse's entries grow and
    the reflections accumulate over 200 tokens, in the blockwise form and in the cache."""
    T = 200
    x = make_inputs(T, seed=8, beta_range=(1.9, 2.0))
    with torch.no_grad():
        x["w"].mul_(0.1).add_(x["w"][:, :, :1])
        x["q"].mul_(3)
        x["k"].mul_(3)
    expected = naive_path_attn(*args(x))
    for form in (chunked, recurrent):
        actual = form(*args(x, torch.float32))
        assert torch.isfinite(actual).all() and rel_rms_error(actual, expected) < FORWARD_TOL


def test_chunked_form_is_bit_exactly_causal():
    T = 2 * CHUNK_SIZE + 7
    gen = torch.Generator().manual_seed(9)
    q, k, v, w = (torch.randn(B, H, T, 32, generator=gen) for _ in range(4))
    w = F.normalize(w, dim=-1)
    beta = 2 * torch.rand(B, H, T, generator=gen)
    out, _ = chunk_path_attn(q, k, v, w, beta)
    for cut in (1, 5, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 3):
        changed = [a.clone() for a in (q, k, v, w, beta)]
        for a in changed[:3]:
            a[:, :, cut:] = 100 * torch.randn(a[:, :, cut:].shape, generator=gen)
        # the future's transforms stay in the kernel's domain (unit w, beta in [0, 2]), the extremes included
        changed[3][:, :, cut:] = F.normalize(torch.randn(B, H, T - cut, 32, generator=gen), dim=-1)
        changed[4][:, :, cut:] = 2 * torch.randint(0, 2, (B, H, T - cut), generator=gen)
        assert torch.equal(chunk_path_attn(*changed)[0][:, :, :cut], out[:, :, :cut]), cut


def test_bad_shapes_are_rejected():
    q, k, v, w, beta = (t.detach() for t in args(make_inputs(10)))
    with pytest.raises(ValueError, match="w must be"):
        naive_path_attn(q, k, v, w[..., :-1], beta)
    with pytest.raises(ValueError, match="beta must be"):
        chunk_path_attn(q, k, v, w, beta[..., None])
    with pytest.raises(ValueError, match="keys"):
        naive_recurrent_path_attn(q, k, v, w, beta, initial_state=(k[..., :-1], v))
    with pytest.raises(ValueError, match="values"):
        naive_recurrent_path_attn(q, k, v, w, beta, initial_state=(k, v[:, :, :3]))


# --- the baseline ----------------------------------------------------------------------------------

SIZES = [(64, 2), (128, 4), (16, 1)]  # (d_model, n_heads) used by the evaluator
LAYER_T = 70  # past two 32-token chunks, not a multiple of one


def make_mixer(d_model: int, n_heads: int, seed: int = 0):
    torch.manual_seed(seed)
    return load_design("path_attention").Mixer(d_model, n_heads, 0, 2)


@pytest.mark.parametrize("d_model, n_heads", SIZES)
def test_baseline_forward_equals_its_step_loop_with_strong_transforms_and_sharp_attention(d_model, n_heads):
    """At initialization beta is near 1 everywhere and the scores are small; a spread beta bias and q, k
    weights scaled by 20 exercise reflections and a peaked softmax, as after training."""
    mixer = make_mixer(d_model, n_heads)
    x = torch.randn(3, LAYER_T, d_model)
    with torch.no_grad():
        mixer.b_proj.bias.copy_(torch.linspace(-4, 4, n_heads))
        mixer.b_proj.weight.mul_(20)
        mixer.q_proj.weight.mul_(20)
        mixer.k_proj.weight.mul_(20)
        y = mixer(x)
        stepped, state = step_all(mixer, x)
    assert torch.isfinite(y).all()
    assert rel_rms_error(stepped, y) < 1e-4
    assert state["keys"].shape == state["values"].shape == (3, n_heads, LAYER_T, d_model // n_heads)


def test_baseline_without_transforms_is_attention_without_position_encoding():
    """beta = 0 (the bias far negative, its weights zero): softmax attention over the layer's own q, k, v."""
    mixer = make_mixer(64, 2)
    x = torch.randn(2, LAYER_T, 64)
    with torch.no_grad():
        mixer.b_proj.weight.zero_()
        mixer.b_proj.bias.fill_(-200.0)
        q, k, v = (proj(x).unflatten(-1, (2, 32)).transpose(1, 2) for proj in (mixer.q_proj, mixer.k_proj,
                                                                                mixer.v_proj))
        expected = mixer.o_proj(softmax_attention(q, k, v).transpose(1, 2).flatten(2))
        assert rel_rms_error(mixer(x), expected) < 1e-6
        assert rel_rms_error(step_all(mixer, x)[0], expected) < 1e-5


def test_baseline_state_is_a_cache_growing_by_a_key_and_a_value_per_token():
    d_model, n_heads = 64, 2
    mixer = make_mixer(d_model, n_heads)
    conv = mixer.init_state(1)["w_conv"].numel()
    with torch.no_grad():
        state = mixer.init_state(1)
        for t, x_t in enumerate(torch.randn(40, 1, d_model), start=1):
            _, state = mixer.step(x_t, state)
            assert sum(s.numel() for s in state.values()) == conv + 2 * d_model * t, t
    assert all(torch.isfinite(s).all() for s in state.values())


@pytest.mark.parametrize("d_model, rank", [(16, 16), (64, 32), (128, 32)])
def test_baseline_w_projection_is_low_rank_and_beta_starts_near_one(d_model, rank):
    mixer = make_mixer(d_model, 1)
    assert [layer.weight.shape for layer in mixer.w_proj] == [(rank, d_model), (d_model, rank)]
    assert 2 * d_model**2 <= sum(p.numel() for p in mixer.parameters()) <= 8 * d_model**2
    beta = mixer._beta(torch.randn(100, d_model))
    assert ((beta - 1).abs() < 0.5).all()
