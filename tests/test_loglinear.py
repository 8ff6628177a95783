"""Log-linear attention (kernels.loglinear) and the log-linear Mamba2 baseline.

The ground truth is the quadratic masked form, O = (scale Q K^T * M_decay * M_H) V, in float64. The
level function is checked against two independent definitions of the Fenwick partition; the
recurrent form (token steps over the Fenwick states, also resumed from a state mid-sequence) and the
chunked O(T log T) form against the masked form in value, and the chunked form's gradients against
the masked form's. With every level weight equal to 1 all three are the scalar-decay linear attention
of kernels.simple_gla, and the baseline is the Mamba2 baseline. Worst errors measured (relative RMS):
~5e-16 in float64 outputs and ~1.5e-15 in float64 gradients (T up to 300), ~3e-7 in float32 (1e-6 with
log-decays down to -40 per step), so the thresholds below leave wide margins while any wrong level,
decay or carry shows as an error of order 1e-2 or more.
"""

import pytest
import torch

from kernels.loglinear import (
    chunk_loglinear_attn,
    empty_fenwick_state,
    fenwick_level,
    level_matrix,
    loglinear_step,
    naive_loglinear_attn,
    naive_recurrent_loglinear_attn,
    num_levels,
)
from kernels.loglinear.chunk import CHUNK_SIZE
from kernels.simple_gla import naive_recurrent_simple_gla
from kernels.utils import rel_rms_error
from tests.baseline_modules import load_design, step_all

B, H, K, V = 2, 2, 6, 10  # head sizes not powers of two
EXACT = 1e-12  # float64 against float64
FORWARD_TOL = 2e-5  # float32 against float64
GRAD_TOL = 1e-10  # float64 gradients
LENGTHS = [1, 2, 7, 33, 64, 97, 300]  # most not powers of two, one past several chunks and levels


pytestmark = pytest.mark.usefixtures("one_thread")


def make_inputs(T: int, seed: int = 0, levels: int | None = None, strongest_decay: float = 2.0):
    """float64 leaves q, k, v, g (log-decays in [-strongest_decay, 0]) and lam (in [0, 2), one per level)."""
    gen = torch.Generator().manual_seed(seed)
    L = num_levels(T) if levels is None else levels
    x = {
        "q": torch.randn(B, H, T, K, generator=gen, dtype=torch.float64),
        "k": torch.randn(B, H, T, K, generator=gen, dtype=torch.float64),
        "v": torch.randn(B, H, T, V, generator=gen, dtype=torch.float64),
        "g": -strongest_decay * torch.rand(B, H, T, generator=gen, dtype=torch.float64),
        "lam": 2 * torch.rand(B, H, T, L, generator=gen, dtype=torch.float64),
    }
    return {name: t.requires_grad_() for name, t in x.items()}


def args(x: dict, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    return [x[name].to(dtype) for name in ("q", "k", "v", "g", "lam")]


# --- the level function ----------------------------------------------------------------------------


def partition(t: int) -> dict[int, int]:
    """Token -> level as seen from t, built the Fenwick way: walk t's set bits from the highest, each
    taking the next 2^b tokens of the prefix as one bucket of level b + 1; then t itself at level 0."""
    level, start = {}, 0
    for bit in reversed(range(t.bit_length())):
        if t >> bit & 1:
            level.update({s: bit + 1 for s in range(start, start + (1 << bit))})
            start += 1 << bit
    assert start == t
    level[t] = 0
    return level


def in_level(t: int, s: int, level: int) -> bool:
    """flash-linear-attention's masked reference, as its three inequalities: for level >= 1, bit
    level - 1 of t is set and s lies in the 2^(level-1) tokens before t with its low level - 1 bits cleared."""
    if level == 0:
        return s == t
    half = 1 << (level - 1)
    base = t - t % half
    return t % (1 << level) >= half and base - half <= s < base


@pytest.mark.parametrize("T", [1, 2, 13, 64, 100, 257])
def test_level_function_matches_the_fenwick_partition_and_the_masked_reference(T):
    matrix = level_matrix(T)
    assert matrix.dtype == torch.long and matrix.shape == (T, T)
    for t in range(T):
        expected = partition(t)
        for s in range(t + 1):
            assert fenwick_level(t, s) == expected[s] == matrix[t, s], (t, s)
            assert [lv for lv in range(num_levels(T)) if in_level(t, s, lv)] == [expected[s]], (t, s)
    assert int(matrix.max()) + 1 == num_levels(T)  # every level num_levels counts is used, no more


def test_buckets_have_power_of_two_sizes_and_finer_ones_are_more_recent():
    t = 0b1011010  # 90
    levels = torch.tensor([fenwick_level(t, s) for s in range(t + 1)])
    sizes = {int(lv): int((levels == lv).sum()) for lv in levels.unique()}
    assert sizes == {0: 1, 2: 2, 4: 8, 5: 16, 7: 64}  # the set bits of 90, and the token itself
    assert (levels.diff() <= 0).all()  # levels never increase towards t
    assert num_levels(1) == 1 and num_levels(2) == 2 and num_levels(64) == 7 and num_levels(65) == 8
    with pytest.raises(ValueError):
        fenwick_level(3, 4)


# --- the three forms agree -------------------------------------------------------------------------


@pytest.mark.parametrize("T", LENGTHS)
def test_recurrent_form_matches_the_masked_form(T):
    x = make_inputs(T, seed=T)
    expected = naive_loglinear_attn(*args(x))
    actual, state = naive_recurrent_loglinear_attn(*args(x), output_final_state=True)
    assert rel_rms_error(actual, expected) < EXACT
    slots, tokens = state
    assert slots.shape == (B, H, T.bit_length(), K, V) and (tokens == T).all()


@pytest.mark.parametrize("T, cut", [(2, 1), (70, 1), (70, 37), (129, 64), (300, 100), (300, 255)])
def test_stepping_resumes_from_a_state_mid_sequence(T, cut):
    """The state after ``cut`` tokens is the whole memory: continuing from it equals the masked form."""
    x = make_inputs(T, seed=cut)
    q, k, v, g, lam = args(x)
    expected = naive_loglinear_attn(q, k, v, g, lam)
    head, state = naive_recurrent_loglinear_attn(*(a[:, :, :cut] for a in (q, k, v, g, lam)),
                                                 output_final_state=True)
    tail, _ = naive_recurrent_loglinear_attn(*(a[:, :, cut:] for a in (q, k, v, g, lam)), initial_state=state)
    assert rel_rms_error(torch.cat([head, tail], dim=2), expected) < EXACT


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("chunk_size", [1, 4, CHUNK_SIZE])
def test_chunked_form_matches_the_masked_form_in_value_and_gradients(T, chunk_size):
    x = make_inputs(T, seed=T + chunk_size)
    expected = naive_loglinear_attn(*args(x))
    actual = chunk_loglinear_attn(*args(x), chunk_size=chunk_size)
    assert rel_rms_error(actual, expected) < EXACT
    grad_out = torch.randn_like(expected)
    grads = torch.autograd.grad((expected * grad_out).sum(), list(x.values()))
    chunk_grads = torch.autograd.grad((actual * grad_out).sum(), list(x.values()))
    for name, got, want in zip(x, chunk_grads, grads):
        assert rel_rms_error(got, want) < GRAD_TOL, name


@pytest.mark.parametrize("T", [75, 300])
def test_chunked_form_in_float32_is_accurate(T):
    x = make_inputs(T, seed=1)
    expected = naive_loglinear_attn(*args(x))
    actual = chunk_loglinear_attn(*args(x, torch.float32))
    assert actual.dtype == torch.float32
    assert rel_rms_error(actual, expected) < FORWARD_TOL


@pytest.mark.parametrize("levels", [1, 3])
def test_levels_past_the_weights_given_share_the_last_weight(levels):
    T = 100  # needs 8 levels
    x = make_inputs(T, seed=5, levels=levels)
    q, k, v, g, lam = args(x)
    padded = torch.cat([lam, lam[..., -1:].expand(-1, -1, -1, num_levels(T) - levels)], dim=-1)
    expected = naive_loglinear_attn(q, k, v, g, padded)
    assert rel_rms_error(naive_loglinear_attn(q, k, v, g, lam), expected) < EXACT
    assert rel_rms_error(chunk_loglinear_attn(q, k, v, g, lam, chunk_size=8), expected) < EXACT
    assert rel_rms_error(naive_recurrent_loglinear_attn(q, k, v, g, lam)[0], expected) < EXACT


@pytest.mark.parametrize("T", [33, 300])
def test_equal_level_weights_give_scalar_decay_linear_attention(T):
    x = make_inputs(T, seed=2)
    q, k, v, g, lam = args(x)
    expected, _ = naive_recurrent_simple_gla(q, k, v, g)
    ones = torch.ones_like(lam)
    for form in (naive_loglinear_attn, chunk_loglinear_attn, lambda *a: naive_recurrent_loglinear_attn(*a)[0]):
        assert rel_rms_error(form(q, k, v, g, ones), expected) < EXACT
    # and a level weight that differs changes the output: the levels are really used
    assert rel_rms_error(naive_loglinear_attn(q, k, v, g, lam), expected) > 0.05


def test_each_level_weight_reaches_exactly_its_buckets():
    """Only level l's weight on: the output is the masked form restricted to the level-l buckets."""
    T = 45
    x = make_inputs(T, seed=3)
    q, k, v, g, _ = args(x)
    full, _ = naive_recurrent_simple_gla(q, k, v, g)
    levels = level_matrix(T)
    total = 0
    for level in range(num_levels(T)):
        lam = torch.zeros(B, H, T, num_levels(T), dtype=torch.float64)
        lam[..., level] = 1
        only = chunk_loglinear_attn(q, k, v, g, lam, chunk_size=4)
        scores = (q @ k.transpose(-1, -2)) * K**-0.5
        segsum = g.cumsum(-1)[..., :, None] - g.cumsum(-1)[..., None, :]
        mask = (levels == level).tril() & torch.ones(T, T, dtype=torch.bool).tril()
        expected = (scores * segsum.exp() * mask) @ v
        assert rel_rms_error(only, expected) < 1e-9, level
        total = total + only
    assert rel_rms_error(total, full) < EXACT  # the levels partition the causal mask


def test_strong_decays_stay_finite_and_exact():
    x = make_inputs(200, seed=4, strongest_decay=40.0)
    expected = naive_loglinear_attn(*args(x))
    for out in (chunk_loglinear_attn(*args(x, torch.float32)), naive_recurrent_loglinear_attn(*args(x))[0]):
        assert torch.isfinite(out).all()
        assert rel_rms_error(out, expected) < FORWARD_TOL


def test_chunked_form_is_bit_exactly_causal():
    """At every cut: a token's run of chunks may hold later tokens of its own chunk, so any quantity
    of a whole chunk (its total decay) must not reach the tokens before the cut (it once did, through
    an exclusive cumulative sum taken as cumsum minus the term)."""
    T = 150
    gen = torch.Generator().manual_seed(6)
    q, k = torch.randn(2, 2, T, 64, generator=gen), torch.randn(2, 2, T, 64, generator=gen)
    v, lam = torch.randn(2, 2, T, 32, generator=gen), torch.rand(2, 2, T, 9, generator=gen)
    g = -0.1 * torch.rand(2, 2, T, generator=gen)
    out = chunk_loglinear_attn(q, k, v, g, lam)
    for cut in range(1, T):
        changed = [a.clone() for a in (q, k, v, g, lam)]
        for a in changed:
            a[:, :, cut:] = torch.rand_like(a[:, :, cut:]) * (-3 if a is changed[3] else 3)
        assert torch.equal(chunk_loglinear_attn(*changed)[:, :, :cut], out[:, :, :cut]), cut


def test_bad_shapes_and_chunk_sizes_are_rejected():
    q, k, v, g, lam = args(make_inputs(10))
    with pytest.raises(ValueError, match="lam"):
        naive_loglinear_attn(q, k, v, g, lam[..., 0])
    with pytest.raises(ValueError, match="power of two"):
        chunk_loglinear_attn(q, k, v, g, lam, chunk_size=24)


# --- the state grows as log T ----------------------------------------------------------------------


def test_live_states_after_t_tokens_are_the_bits_of_t():
    T = 1100
    q, k, v, g, lam = (a.detach() for a in args(make_inputs(T, seed=7, levels=4, strongest_decay=0.01)))
    state = empty_fenwick_state(B, H, K, V, q)
    for t in range(T):
        _, state = loglinear_step(q[:, :, t], k[:, :, t], v[:, :, t], g[:, :, t], lam[:, :, t], state)
        n = t + 1
        slots, tokens = state
        assert slots.shape[2] == n.bit_length() <= 1 + torch.tensor(n).log2().floor()  # O(log T) slots
        live = [j for j in range(slots.shape[2]) if slots[:, :, j].abs().amax() > 0]
        assert live == [j for j in range(n.bit_length()) if n >> j & 1], n  # one per set bit of n
        assert (tokens == n).all()


# --- the baseline ----------------------------------------------------------------------------------

SIZES = [(64, 2), (128, 4), (16, 1)]  # (d_model, n_heads) used by the evaluator
LAYER_T = 70


def make_mixer(d_model: int, n_heads: int, seed: int = 0):
    torch.manual_seed(seed)
    return load_design("loglinear_mamba2").Mixer(d_model, n_heads, 0, 2)


@pytest.mark.parametrize("d_model, n_heads", SIZES)
def test_baseline_forward_equals_its_step_loop_and_is_causal(d_model, n_heads):
    mixer = make_mixer(d_model, n_heads)
    with torch.no_grad():
        mixer.D.normal_()  # D = 0 at initialization would hide a wrong skip in step
        x = torch.randn(3, LAYER_T, d_model)
        y = mixer(x)
        stepped, state = step_all(mixer, x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        assert rel_rms_error(stepped, y) < 1e-5
        assert state["levels"].shape[2] == LAYER_T.bit_length() and (state["tokens"] == LAYER_T).all()
        for t in (1, 31, 32, 64, 65):
            x_future = x.clone()
            x_future[:, t:] = torch.randn(3, LAYER_T - t, d_model) * 3
            assert torch.equal(mixer(x_future)[:, :t], y[:, :t]), f"output before {t} depends on the future"


@pytest.mark.parametrize("d_model, n_heads", SIZES)
def test_baseline_with_equal_level_weights_is_the_mamba2_baseline(d_model, n_heads):
    mixer = make_mixer(d_model, n_heads)
    mamba2 = load_design("mamba2").Mixer(d_model, n_heads, 0, 2)
    missing, unexpected = mamba2.load_state_dict(mixer.state_dict(), strict=False)
    assert not missing and sorted(unexpected) == ["L", "lambda_proj.weight"]
    x = torch.randn(2, LAYER_T, d_model)
    with torch.no_grad():
        mixer.D.normal_()
        mamba2.D.copy_(mixer.D)
        expected = mamba2(x)
        assert rel_rms_error(mixer(x), expected) > 1e-3  # softplus weights near log 2 differ from 1
        mixer.level_weights = lambda dl: torch.ones_like(dl)
        assert rel_rms_error(mixer(x), expected) < 1e-5
        assert rel_rms_error(step_all(mixer, x)[0], expected) < 1e-5


def test_baseline_gradients_reach_every_parameter_and_the_parameter_count_is_an_attention_layers():
    for d_model, n_heads in SIZES:
        mixer = make_mixer(d_model, n_heads)
        assert 2 * d_model**2 <= sum(p.numel() for p in mixer.parameters()) <= 8 * d_model**2
    x = torch.randn(2, 40, 64, requires_grad=True)
    mixer = make_mixer(64, 2)
    (mixer(x) * torch.randn(2, 40, 64)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def state_numbers(state: dict) -> int:
    return sum(t.numel() for t in state.values())


def test_baseline_state_grows_as_log_t_not_t():
    """One K x V slot per head more at each power of two: 13 slots after 4096 tokens, as the check
    tier's longest scaling probe; the forward at that length still matches the step loop."""
    d_model, n_heads = 16, 1
    mixer = make_mixer(d_model, n_heads)
    x = torch.randn(1, 4096, d_model)
    with torch.no_grad():
        mixer.D.normal_()
        y = mixer(x)
        stepped, state = step_all(mixer, x)
    assert rel_rms_error(stepped, y) < 1e-4
    slot = n_heads * mixer.d_state * mixer.head_dim
    assert state["levels"].shape[2] == 13
    fixed = state_numbers(mixer.init_state(1))
    sizes = {}
    with torch.no_grad():
        state = mixer.init_state(1)
        for t in range(1, 1025):
            _, state = mixer.step(x[:, t - 1], state)
            sizes[t] = state_numbers(state)
    for t in (1, 2, 3, 64, 65, 1000, 1024):
        assert sizes[t] == fixed + t.bit_length() * slot, t
    assert sizes[1024] - sizes[512] == sizes[512] - sizes[256] == slot  # a constant step per doubling
