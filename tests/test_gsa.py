"""Gated Slot Attention: the chunked form and the single-token step agree with the naive token loop,
the slot state stays bounded, and the baseline honours the design contract.

Ground truth is the naive loop in float64. The chunked form in float64 must match it to 1e-10; in
float32, to the thresholds of tests/test_recurrences.py (forward < 2e-5, gradients < 1e-4).
"""

import pytest
import torch

from kernels.gsa import chunk_gsa, gsa_step, naive_recurrent_gsa
from kernels.gsa.chunk import CHUNK_SIZE, MAX_CHUNK_SIZE
from kernels.utils import rel_rms_error
from tests.baseline_modules import load_design

B, H, K, V, M = 2, 2, 12, 20, 7  # head sizes and slot count deliberately not powers of two
FORWARD_TOL = 2e-5
GRAD_TOL = 1e-4
EXACT_TOL = 1e-10  # float64 chunked against float64 naive
INPUT_NAMES = ("q", "k", "v", "s", "g")


pytestmark = pytest.mark.usefixtures("one_thread")


def make_inputs(T: int, seed: int = 0, strongest_decay: float = 5.0, paper_write: bool = False) -> dict:
    """float64 leaves q, k, v, s, g and an initial (key slots, value slots) pair.

    g is drawn from [-strongest_decay, 0] per step and slot; s from (0, 1) independently of g, or
    s = 1 - exp(g) as in the paper when paper_write (then s is not a leaf of its own).
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    x = {"q": randn(B, H, T, K), "k": randn(B, H, T, K), "v": randn(B, H, T, V),
         "s": torch.rand(B, H, T, M, generator=gen, dtype=torch.float64),
         "g": -strongest_decay * torch.rand(B, H, T, M, generator=gen, dtype=torch.float64),
         "Ks0": randn(B, H, M, K), "Vs0": randn(B, H, M, V)}
    x = {name: t.requires_grad_() for name, t in x.items()}
    if paper_write:
        del x["s"]
    return x


def call(fn, x: dict, dtype: torch.dtype, **kw):
    s = x["s"] if "s" in x else -torch.expm1(x["g"])
    args = [x["q"], x["k"], x["v"], s, x["g"]]
    return fn(*(t.to(dtype) for t in args), initial_state=(x["Ks0"].to(dtype), x["Vs0"].to(dtype)),
              output_final_state=True, **kw)


def outputs_and_grads(fn, x: dict, dtype: torch.dtype, **kw):
    """(o, key slots, value slots, {leaf: gradient}) under a fixed random loss on all three."""
    o, (Ks, Vs) = call(fn, x, dtype, **kw)
    gen = torch.Generator().manual_seed(123)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype)).sum() for t in (o, Ks, Vs))
    grads = torch.autograd.grad(loss, list(x.values()))
    return o, Ks, Vs, dict(zip(x, grads))


LENGTHS = [1, 7, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 3, 70]


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("dtype, tol, grad_tol", [(torch.float64, EXACT_TOL, EXACT_TOL),
                                                  (torch.float32, FORWARD_TOL, GRAD_TOL)], ids=["f64", "f32"])
def test_chunk_matches_naive_in_value_and_gradients(T, dtype, tol, grad_tol):
    x = make_inputs(T, seed=T)
    o_ref, Ks_ref, Vs_ref, grads_ref = outputs_and_grads(naive_recurrent_gsa, x, torch.float64)
    o, Ks, Vs, grads = outputs_and_grads(chunk_gsa, x, dtype)
    assert o.dtype == Ks.dtype == Vs.dtype == dtype
    for name, actual, expected in [("o", o, o_ref), ("Ks", Ks, Ks_ref), ("Vs", Vs, Vs_ref)]:
        assert rel_rms_error(actual, expected) < tol, (name, rel_rms_error(actual, expected))
    for name in x:
        err = rel_rms_error(grads[name], grads_ref[name])
        assert err < grad_tol, (name, err)


@pytest.mark.parametrize("chunk_size", [1, 4, 5, MAX_CHUNK_SIZE])
def test_any_chunk_size_up_to_the_largest_is_exact(chunk_size):
    x = make_inputs(23, seed=chunk_size)
    o_ref, Ks_ref, Vs_ref, grads_ref = outputs_and_grads(naive_recurrent_gsa, x, torch.float64)
    o, Ks, Vs, grads = outputs_and_grads(chunk_gsa, x, torch.float64, chunk_size=chunk_size)
    for actual, expected in [(o, o_ref), (Ks, Ks_ref), (Vs, Vs_ref), *((grads[n], grads_ref[n]) for n in x)]:
        assert rel_rms_error(actual, expected) < EXACT_TOL


@pytest.mark.parametrize("strongest_decay", [40.0, 200.0])
def test_chunk_is_exact_under_decays_that_need_the_float64_factorization(strongest_decay):
    """Whole chunks at the floor of -40 per step: exp(-b) reaches e^640, which only float64 holds."""
    x = make_inputs(2 * CHUNK_SIZE + 5, seed=1, strongest_decay=strongest_decay, paper_write=True)
    with torch.no_grad():
        x["g"][:, :, 3:CHUNK_SIZE + 3] = -strongest_decay  # a saturated run across a chunk border
    o_ref, Ks_ref, Vs_ref, grads_ref = outputs_and_grads(naive_recurrent_gsa, x, torch.float64)
    o, Ks, Vs, grads = outputs_and_grads(chunk_gsa, x, torch.float32)
    for actual, expected in [(o, o_ref), (Ks, Ks_ref), (Vs, Vs_ref)]:
        assert torch.isfinite(actual).all() and rel_rms_error(actual, expected) < FORWARD_TOL
    for name in x:  # exp(-40) ~ 4e-18: the floor below -40 changes nothing float32 can see
        assert torch.isfinite(grads[name]).all()
        if strongest_decay == 40.0:
            assert rel_rms_error(grads[name], grads_ref[name]) < GRAD_TOL, name


@pytest.mark.parametrize("T", [1, CHUNK_SIZE + 1, 45])
def test_step_by_step_equals_forward_and_final_state(T):
    x = {name: t.detach().float() for name, t in make_inputs(T, seed=7).items()}
    o, (Ks, Vs) = call(chunk_gsa, x, torch.float32)
    state = (x["Ks0"], x["Vs0"])
    outputs = []
    for t in range(T):
        o_t, state = gsa_step(*(x[n][:, :, t] for n in INPUT_NAMES), state)
        outputs.append(o_t)
    assert rel_rms_error(torch.stack(outputs, dim=2), o) < FORWARD_TOL
    assert rel_rms_error(state[0], Ks) < FORWARD_TOL and rel_rms_error(state[1], Vs) < FORWARD_TOL


def test_step_follows_the_paper_equations():
    """One step written out from the paper: moving averages of k and v per slot, softmax read."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(B, H, n, generator=gen, dtype=torch.float64) for n in (K, K, V))
    alpha = torch.rand(B, H, M, generator=gen, dtype=torch.float64)
    Ks0, Vs0 = torch.randn(B, H, M, K, generator=gen, dtype=torch.float64), torch.randn(B, H, M, V, generator=gen,
                                                                                       dtype=torch.float64)
    o, (Ks, Vs) = gsa_step(q, k, v, 1 - alpha, alpha.log(), (Ks0, Vs0), scale=0.5)
    for b in range(B):
        for h in range(H):
            Ks_expected = torch.diag(alpha[b, h]) @ Ks0[b, h] + torch.outer(1 - alpha[b, h], k[b, h])
            Vs_expected = torch.diag(alpha[b, h]) @ Vs0[b, h] + torch.outer(1 - alpha[b, h], v[b, h])
            o_expected = Vs_expected.T @ torch.softmax(0.5 * Ks_expected @ q[b, h], dim=0)
            torch.testing.assert_close(Ks[b, h], Ks_expected)
            torch.testing.assert_close(Vs[b, h], Vs_expected)
            torch.testing.assert_close(o[b, h], o_expected)


@pytest.mark.parametrize("fn", [naive_recurrent_gsa, chunk_gsa], ids=["naive", "chunk"])
@pytest.mark.parametrize("log_alpha", [-1e-4, -0.5, -30.0, float("-inf")], ids=["near1", "mid", "near0", "zero"])
def test_state_stays_within_the_range_of_what_was_written(fn, log_alpha):
    """With s = 1 - alpha every slot row is a convex mixture of the initial row and the written
    keys and values: bounded elementwise by their extremes however long the sequence."""
    T = 300
    gen = torch.Generator().manual_seed(5)
    q, k = 3 * torch.randn(1, H, T, K, generator=gen), 3 * torch.randn(1, H, T, K, generator=gen)
    v = 3 * torch.randn(1, H, T, V, generator=gen)
    g = torch.full((1, H, T, M), log_alpha)
    g[..., : M // 2] = log_alpha * torch.rand(1, H, T, M // 2, generator=gen)  # some slots near alpha = 1
    Ks0, Vs0 = torch.randn(1, H, M, K, generator=gen), torch.randn(1, H, M, V, generator=gen)
    o, (Ks, Vs) = fn(q, k, v, -torch.expm1(g), g, initial_state=(Ks0, Vs0), output_final_state=True)
    eps = 1e-5
    for slots, written, initial in [(Ks, k, Ks0), (Vs, v, Vs0)]:
        assert torch.isfinite(slots).all()
        assert (slots.abs() <= torch.maximum(written.abs().amax(), initial.abs().amax()) + eps).all()
    # the read is a convex mixture of value-slot rows, each bounded the same way
    assert torch.isfinite(o).all() and o.abs().amax() <= torch.maximum(v.abs().amax(), Vs0.abs().amax()) + eps
    if log_alpha == -1e-4:  # slots near alpha = 1 barely move from where they started in 300 steps
        assert rel_rms_error(Ks, Ks0) < 0.1
    if log_alpha == float("-inf"):  # alpha = 0: the slots hold the last token exactly
        torch.testing.assert_close(Ks[..., M // 2:, :], k[:, :, -1:].expand(-1, -1, M - M // 2, -1))


def test_chunk_is_bit_exactly_causal():
    gen = torch.Generator().manual_seed(11)
    T = 2 * CHUNK_SIZE + 7
    x = [torch.randn(B, H, T, n, generator=gen) for n in (K, K, V)]
    g = -3 * torch.rand(B, H, T, M, generator=gen)
    o, _ = chunk_gsa(*x, -torch.expm1(g), g)
    for t in (1, CHUNK_SIZE - 3, CHUNK_SIZE, CHUNK_SIZE + 5):
        changed = [a.clone() for a in x]
        g2 = g.clone()
        for a in changed:
            a[:, :, t:] = 100 * torch.randn(a[:, :, t:].shape, generator=gen)
        g2[:, :, t:] = -40 * torch.rand(g2[:, :, t:].shape, generator=gen)
        o2, _ = chunk_gsa(*changed, -torch.expm1(g2), g2)
        assert torch.equal(o2[:, :, :t], o[:, :, :t]), t


def test_rejects_chunks_beyond_the_float64_range_and_wrong_shapes():
    x = make_inputs(5)
    args = [x[n].detach() for n in INPUT_NAMES]
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_gsa(*args, chunk_size=MAX_CHUNK_SIZE + 1)
    with pytest.raises(ValueError, match="g must be"):
        chunk_gsa(*args[:4], args[4][..., :-1])
    with pytest.raises(ValueError, match="key slots"):
        chunk_gsa(*args, initial_state=(x["Ks0"].detach()[..., :-1], x["Vs0"].detach()))


# --- the baseline design -----------------------------------------------------------------------

SIZES = [(64, 2), (128, 4), (16, 1)]  # (d_model, n_heads), as tests/test_baselines.py
T_BASELINE = 70  # not a multiple of the chunk


def make_mixer(d_model: int, n_heads: int, seed: int = 0, **kw):
    module = load_design("gsa")
    torch.manual_seed(seed)
    return module.Mixer(d_model, n_heads, 0, 2, **kw)


@pytest.mark.parametrize("sharpen", [1.0, 40.0], ids=["init", "sharp"])
@pytest.mark.parametrize("d_model, n_heads", SIZES)
def test_baseline_forward_equals_its_step_loop(d_model, n_heads, sharpen):
    """At initialization the slot scores are tiny and the softmax nearly uniform (a wrong score
    scale in step would go unseen); q and k weights scaled by 40 make the read peaked (the top
    slot gets ~0.5 of the weight), as after training."""
    mixer = make_mixer(d_model, n_heads)
    x = torch.randn(3, T_BASELINE, d_model)
    with torch.no_grad():
        mixer.q_proj.weight.mul_(sharpen)
        mixer.k_proj.weight.mul_(sharpen)
        expected = mixer(x)
        state = mixer.init_state(3)
        outputs = []
        for t in range(T_BASELINE):
            y_t, state = mixer.step(x[:, t], state)
            outputs.append(y_t)
    actual = torch.stack(outputs, dim=1)
    assert rel_rms_error(actual, expected) < 1e-4


@pytest.mark.parametrize("d_model, n_heads", SIZES)
def test_baseline_is_causal_finite_and_trains_every_parameter(d_model, n_heads):
    mixer = make_mixer(d_model, n_heads)
    n_params = sum(p.numel() for p in mixer.parameters())
    assert 2 * d_model**2 <= n_params <= 8 * d_model**2
    x = torch.randn(2, T_BASELINE, d_model)
    with torch.no_grad():
        y = mixer(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        for t in (1, 31, 64):
            x_future = x.clone()
            x_future[:, t:] = torch.randn(2, T_BASELINE - t, d_model) * 3
            assert torch.equal(mixer(x_future)[:, :t], y[:, :t]), t
    x.requires_grad_()
    (mixer(x) * torch.randn_like(x)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_baseline_state_is_constant_in_size_and_bounded():
    mixer = make_mixer(64, 2)
    with torch.no_grad():
        state = mixer.init_state(1)
        sizes = []
        for x_t in 10 * torch.randn(200, 1, 64):
            _, state = mixer.step(x_t, state)
            sizes.append(sum(s.numel() for s in state))
            assert all(torch.isfinite(s).all() for s in state)
    assert sizes == [2 * 2 * 32 * 32] * 200  # 32 slots of a key and a value, 2 heads of 32
    assert mixer.num_slots == 32
