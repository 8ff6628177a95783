"""The chunked recurrences and single-token steps agree with the naive token loops.

Ground truth is the naive loop run in float64; the chunked forms run in float32. Thresholds
(rel_rms_error): forward outputs and final states < 2e-5, gradients < 1e-4. The worst errors
measured over the main parametrization are 6e-7 (forward) and 3e-6 (gradients, simple_gla with
decays down to -5 per step), so the thresholds leave a 30x margin while still catching any
wrong term, which shows up as an error of order 1e-2 or more.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from kernels.delta_rule import chunk_delta_rule, delta_rule_step, naive_recurrent_delta_rule
from kernels.delta_rule.chunk import CHUNK_SIZE as DELTA_CHUNK
from kernels.gated_delta_rule import (
    chunk_gated_delta_rule,
    gated_delta_rule_step,
    naive_recurrent_gated_delta_rule,
)
from kernels.gated_delta_rule.chunk import CHUNK_SIZE as GATED_DELTA_CHUNK
from kernels.gla import chunk_gla, gla_step, naive_recurrent_gla
from kernels.gla.chunk import CHUNK_SIZE as GLA_CHUNK
from kernels.gla.chunk import MAX_CHUNK_SIZE as GLA_MAX_CHUNK
from kernels.kda import chunk_kda, kda_step, naive_recurrent_kda
from kernels.kda.chunk import CHUNK_SIZE as KDA_CHUNK
from kernels.kda.chunk import MAX_CHUNK_SIZE as KDA_MAX_CHUNK
from kernels.linear_attn import chunk_linear_attn, linear_attn_step, naive_recurrent_linear_attn
from kernels.linear_attn.chunk import CHUNK_SIZE as LINEAR_ATTN_CHUNK
from kernels.rwkv7 import chunk_rwkv7, naive_recurrent_rwkv7, rwkv7_step
from kernels.rwkv7.chunk import CHUNK_SIZE as RWKV7_CHUNK
from kernels.rwkv7.chunk import MAX_CHUNK_SIZE as RWKV7_MAX_CHUNK
from kernels.simple_gla import chunk_simple_gla, naive_recurrent_simple_gla, simple_gla_step
from kernels.simple_gla.chunk import CHUNK_SIZE as SIMPLE_GLA_CHUNK
from kernels.utils import LOG_DECAY_FLOOR, decayed_chunk_products, invert_unit_lower, product_dtype, rel_rms_error

FORWARD_TOL = 2e-5
GRAD_TOL = 1e-4
B, H, K, V = 2, 2, 12, 20  # head sizes deliberately not powers of two


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Op:
    name: str
    naive: Callable
    chunk: Callable
    step: Callable
    chunk_size: int
    gate: str | None = None  # None, "head" (g: (B, H, T)) or "channel" (g: (B, H, T, K))
    beta: bool = False
    removal: bool = False  # RWKV-7's removal key kappa and learning rate a, each (B, H, T, K)
    max_chunk: int | None = None  # the largest chunk_size the chunked form accepts

    def __str__(self) -> str:
        return self.name


OPS = [
    Op("linear_attn", naive_recurrent_linear_attn, chunk_linear_attn, linear_attn_step, LINEAR_ATTN_CHUNK),
    Op("simple_gla", naive_recurrent_simple_gla, chunk_simple_gla, simple_gla_step, SIMPLE_GLA_CHUNK,
       gate="head"),
    Op("gla", naive_recurrent_gla, chunk_gla, gla_step, GLA_CHUNK, gate="channel", max_chunk=GLA_MAX_CHUNK),
    Op("delta_rule", naive_recurrent_delta_rule, chunk_delta_rule, delta_rule_step, DELTA_CHUNK, beta=True),
    Op("gated_delta_rule", naive_recurrent_gated_delta_rule, chunk_gated_delta_rule, gated_delta_rule_step,
       GATED_DELTA_CHUNK, gate="head", beta=True),
    Op("kda", naive_recurrent_kda, chunk_kda, kda_step, KDA_CHUNK, gate="channel", beta=True,
       max_chunk=KDA_MAX_CHUNK),
    Op("rwkv7", naive_recurrent_rwkv7, chunk_rwkv7, rwkv7_step, RWKV7_CHUNK, gate="channel", removal=True,
       max_chunk=RWKV7_MAX_CHUNK),
]
# every input an op may take, in the order of the ops' positional arguments
INPUT_NAMES = ("q", "k", "v", "g", "beta", "kappa", "a")


def make_inputs(op: Op, T: int, seed: int = 0, strongest_decay: float = 5.0) -> dict[str, torch.Tensor]:
    """float64 leaves: q, k, v, the op's g and/or beta, and an initial state.

    Decays are drawn from [-strongest_decay, 0] per step, beta from (0, 2); keys of the delta
    rules are L2-normalized, as the designs feed them. RWKV-7's removal keys kappa are unit vectors,
    its learning rates a are drawn from (0, 1) per channel, and its replacement keys k are left unnormalized.
    """
    gen = torch.Generator().manual_seed(seed)
    x = {
        "q": torch.randn(B, H, T, K, generator=gen, dtype=torch.float64),
        "k": torch.randn(B, H, T, K, generator=gen, dtype=torch.float64),
        "v": torch.randn(B, H, T, V, generator=gen, dtype=torch.float64),
    }
    if op.beta:
        x["k"] = F.normalize(x["k"], dim=-1)
    if op.gate is not None:
        shape = (B, H, T, K) if op.gate == "channel" else (B, H, T)
        x["g"] = -strongest_decay * torch.rand(*shape, generator=gen, dtype=torch.float64)
    if op.beta:
        x["beta"] = 2 * torch.rand(B, H, T, generator=gen, dtype=torch.float64)
    if op.removal:
        x["kappa"] = F.normalize(torch.randn(B, H, T, K, generator=gen, dtype=torch.float64), dim=-1)
        x["a"] = torch.rand(B, H, T, K, generator=gen, dtype=torch.float64)
    x["initial_state"] = torch.randn(B, H, K, V, generator=gen, dtype=torch.float64)
    return {name: t.requires_grad_() for name, t in x.items()}


def positional(x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [x[name] for name in INPUT_NAMES if name in x]


def run(fn: Callable, x: dict[str, torch.Tensor], dtype: torch.dtype, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    args = [t.to(dtype) for t in positional(x)]
    return fn(*args, initial_state=x["initial_state"].to(dtype), output_final_state=True, **kw)


def outputs_and_grads(fn: Callable, x: dict[str, torch.Tensor], dtype: torch.dtype, **kw):
    """(o, final state, {input name: gradient}) under a fixed random loss on o and the state."""
    o, state = run(fn, x, dtype, **kw)
    gen = torch.Generator().manual_seed(123)
    do = torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype)
    dstate = torch.randn(state.shape, generator=gen, dtype=torch.float64).to(state.dtype)
    loss = (o * do).sum() + (state * dstate).sum()
    grads = torch.autograd.grad(loss, list(x.values()))
    return o, state, dict(zip(x, grads))


def lengths(chunk: int) -> list[int]:
    return sorted({1, 7, chunk - 1, chunk, chunk + 1, 2 * chunk + 3} - {0})


CASES = [(op, T) for op in OPS for T in lengths(op.chunk_size)]


@pytest.mark.parametrize(("op", "T"), CASES, ids=[f"{op}-T{T}" for op, T in CASES])
def test_chunk_matches_naive_outputs_state_and_gradients(op: Op, T: int):
    x = make_inputs(op, T)
    o_ref, state_ref, grads_ref = outputs_and_grads(op.naive, x, torch.float64)
    o, state, grads = outputs_and_grads(op.chunk, x, torch.float32)

    assert o.dtype == torch.float32 and o.shape == (B, H, T, V)
    assert rel_rms_error(o, o_ref) < FORWARD_TOL
    assert rel_rms_error(state, state_ref) < FORWARD_TOL
    for name, grad in grads.items():
        assert rel_rms_error(grad, grads_ref[name]) < GRAD_TOL, name


CHUNK_CASES = [(op, C) for op in OPS for C in (4, 8, 32, 64) if op.max_chunk is None or C <= op.max_chunk]


@pytest.mark.parametrize(("op", "chunk_size"), CHUNK_CASES, ids=[f"{op}-C{C}" for op, C in CHUNK_CASES])
def test_chunk_matches_naive_for_other_chunk_sizes(op: Op, chunk_size: int):
    x = make_inputs(op, T=83, seed=1)
    with torch.no_grad():
        o_ref, state_ref = run(op.naive, x, torch.float64)
        o, state = run(op.chunk, x, torch.float32, chunk_size=chunk_size)
    assert rel_rms_error(o, o_ref) < FORWARD_TOL
    assert rel_rms_error(state, state_ref) < FORWARD_TOL


@pytest.mark.parametrize("op", OPS, ids=str)
def test_stepping_token_by_token_reproduces_naive(op: Op):
    T = 9
    x = make_inputs(op, T, seed=2)
    with torch.no_grad():
        o_ref, state_ref = run(op.naive, x, torch.float64)
        state = x["initial_state"].detach()
        outputs = []
        for t in range(T):
            o_t, state = op.step(*[a[:, :, t] for a in positional(x)], state)
            outputs.append(o_t)
    assert rel_rms_error(torch.stack(outputs, dim=2), o_ref) < 1e-12
    assert rel_rms_error(state, state_ref) < 1e-12


@pytest.mark.parametrize("op", OPS, ids=str)
def test_chunk_form_is_bit_exactly_causal(op: Op):
    """The evaluator requires outputs before a position to be bit-identical when later tokens change
    (cuts inside a chunk, on its boundaries and in the last, padded chunk)."""
    T = 75
    x = make_inputs(op, T, seed=3)
    with torch.no_grad():
        o, _ = run(op.chunk, x, torch.float32)
        for cut in (1, 15, 16, 17, 63, 64, 65, 74):
            changed = {name: t.detach().clone() for name, t in x.items()}
            for name in INPUT_NAMES:
                if name in changed:
                    changed[name][:, :, cut:] = make_inputs(op, T, seed=4)[name][:, :, cut:]
            o_changed, _ = run(op.chunk, changed, torch.float32)
            assert torch.equal(o_changed[:, :, :cut], o[:, :, :cut]), cut
            assert not torch.equal(o_changed[:, :, cut:], o[:, :, cut:]), cut


@pytest.mark.parametrize("op", [op for op in OPS if op.gate], ids=str)
def test_extreme_decays_stay_finite_and_exact(op: Op):
    """Per-step log-decays down to -60 and -inf (a hard reset) are legal inputs; the chunked forms
    floor them at -40, whose effect, exp(-40) ~ 4e-18, is far below float32 resolution."""
    T = 37
    x = make_inputs(op, T, seed=4, strongest_decay=60.0)
    with torch.no_grad():
        x["g"][:, :, ::5] = -float("inf")
    o_ref, state_ref, grads_ref = outputs_and_grads(op.naive, x, torch.float64)
    o, state, grads = outputs_and_grads(op.chunk, x, torch.float32)
    assert rel_rms_error(o, o_ref) < FORWARD_TOL
    assert rel_rms_error(state, state_ref) < FORWARD_TOL
    for name in ("q", "k", "v", "kappa", "a"):
        if name in grads:
            assert rel_rms_error(grads[name], grads_ref[name]) < GRAD_TOL, name
    # The floor leaves exp(-40)-sized traces where the exact gradient is ~0 (the initial state is
    # erased by g = -inf at t = 0), so these two are compared in absolute terms.
    assert torch.allclose(grads["g"].double(), grads_ref["g"], rtol=GRAD_TOL, atol=1e-6)
    if op.removal:
        # RWKV-7's removal reads S_{t-1} before it decays: g = -inf does not erase the initial state.
        assert rel_rms_error(grads["initial_state"], grads_ref["initial_state"]) < GRAD_TOL
    else:
        assert grads["initial_state"].abs().max() < 1e-12


@pytest.mark.parametrize("op", [op for op in OPS if op.max_chunk], ids=str)
def test_per_channel_decays_reject_chunks_beyond_their_float64_exponent_range(op: Op):
    x = make_inputs(op, T=40)
    with torch.no_grad(), pytest.raises(ValueError, match=f"chunk_size <= {op.max_chunk}"):
        op.chunk(*positional(x), chunk_size=2 * op.max_chunk)


@pytest.mark.parametrize("op", [op for op in OPS if op.beta], ids=str)
def test_delta_rules_stay_accurate_with_correlated_keys_and_beta_near_two(op: Op):
    """Nearly parallel keys with beta ~ 2 make each step almost a reflection: the regime where a
    Neumann-series inverse of the chunk matrix loses float32 precision."""
    T = 120
    x = make_inputs(op, T, seed=5, strongest_decay=0.05)
    with torch.no_grad():
        shared = torch.randn(B, H, 1, K, dtype=torch.float64)
        x["k"].copy_(F.normalize(shared + 0.1 * torch.randn(B, H, T, K, dtype=torch.float64), dim=-1))
        x["beta"].copy_(1.9 + 0.1 * torch.rand(B, H, T, dtype=torch.float64))
        o_ref, state_ref = run(op.naive, x, torch.float64)
        o, state = run(op.chunk, x, torch.float32, chunk_size=min(64, op.max_chunk or 64))
    assert rel_rms_error(o, o_ref) < 1e-4
    assert rel_rms_error(state, state_ref) < 1e-4


@pytest.mark.parametrize("op", [op for op in OPS if op.removal], ids=str)
def test_rwkv7_stays_accurate_with_correlated_removal_keys_and_rates_near_one(op: Op):
    """RWKV-7's counterpart of the test above: nearly parallel removal keys with a ~ 1 in every channel
    make the chunk's unit-lower matrix far from the identity."""
    T = 120
    x = make_inputs(op, T, seed=5, strongest_decay=0.05)
    with torch.no_grad():
        shared = torch.randn(B, H, 1, K, dtype=torch.float64)
        x["kappa"].copy_(F.normalize(shared + 0.1 * torch.randn(B, H, T, K, dtype=torch.float64), dim=-1))
        x["k"].copy_(F.normalize(x["k"], dim=-1))
        x["a"].copy_(0.9 + 0.1 * torch.rand(B, H, T, K, dtype=torch.float64))
        o_ref, state_ref = run(op.naive, x, torch.float64)
        o, state = run(op.chunk, x, torch.float32, chunk_size=op.max_chunk)
    assert rel_rms_error(o, o_ref) < 1e-4
    assert rel_rms_error(state, state_ref) < 1e-4


@pytest.mark.parametrize("op", OPS, ids=str)
def test_low_precision_inputs_give_low_precision_outputs_and_float32_state(op: Op):
    x = make_inputs(op, T=20, seed=6)
    with torch.no_grad():
        o_ref, _ = run(op.chunk, x, torch.float32)
        args = [t.to(torch.bfloat16) for t in positional(x)]
        o, state = op.chunk(*args, initial_state=x["initial_state"].float(), output_final_state=True)
    assert o.dtype == torch.bfloat16 and state.dtype == torch.float32
    assert rel_rms_error(o, o_ref) < 5e-2


@pytest.mark.parametrize("op", OPS, ids=str)
def test_final_state_is_none_unless_requested(op: Op):
    x = make_inputs(op, T=5)
    with torch.no_grad():
        for fn in (op.naive, op.chunk):
            assert fn(*positional(x))[1] is None


def test_mismatched_shapes_are_rejected_with_both_shapes_named():
    q = torch.randn(B, H, 8, K)
    with pytest.raises(ValueError, match=r"got q \(2, 2, 8, 12\), k \(2, 2, 7, 12\)"):
        chunk_linear_attn(q, torch.randn(B, H, 7, K), torch.randn(B, H, 8, V))
    with pytest.raises(ValueError, match=r"beta must be \(2, 2, 8\), got \(2, 2, 8, 1\)"):
        chunk_delta_rule(q, q, torch.randn(B, H, 8, V), torch.rand(B, H, 8, 1))


@pytest.mark.parametrize("C", [1, 5, 16, 64])
def test_invert_unit_lower_is_the_inverse_and_has_exact_gradient(C: int):
    gen = torch.Generator().manual_seed(C)
    L = (0.3 * torch.randn(3, C, C, generator=gen, dtype=torch.float64)).tril(-1).requires_grad_()
    eye = torch.eye(C, dtype=torch.float64)
    assert torch.allclose(invert_unit_lower(L) @ (eye + L), eye.expand(3, C, C), atol=1e-10)
    if C <= 16:  # gradcheck costs a forward per input entry
        assert torch.autograd.gradcheck(lambda x: invert_unit_lower(x.tril(-1)), (L,), fast_mode=True)


@pytest.mark.parametrize("reads_before", [(False, False), (False, True)])
def test_decayed_chunk_products_match_their_definition_and_have_exact_gradients(reads_before):
    """The float64 factorization behind chunk_kda and chunk_rwkv7 against the pairwise definition,
    and its written-out backward against finite differences."""
    gen = torch.Generator().manual_seed(7)
    C, n = 6, 3
    g = -3 * torch.rand(2, C, n, generator=gen, dtype=torch.float64)
    xs = [torch.randn(2, C, n, generator=gen, dtype=torch.float64) for _ in range(4)]
    b = g.cumsum(-2)
    outs = decayed_chunk_products(b, xs[:2], xs[2:], reads_before, (0, -1))
    b_before = torch.cat([torch.zeros_like(b[:, :1]), b[:, :-1]], dim=-2)
    for r, (x, before) in enumerate(zip(xs[:2], reads_before)):
        e = b_before if before else b
        for c, y in enumerate(xs[2:]):
            pairwise = (x[:, :, None] * y[:, None] * (e[:, :, None] - b[:, None]).exp()).sum(-1)
            assert torch.allclose(outs[2 * r + c], pairwise.tril((0, -1)[r]), atol=1e-12)
        assert torch.allclose(outs[4 + r], x * e.exp(), atol=1e-12)
    for c, y in enumerate(xs[2:]):
        assert torch.allclose(outs[6 + c], y * (b[:, -1:] - b).exp(), atol=1e-12)
    assert torch.allclose(outs[8], b[:, -1].exp(), atol=1e-12)
    inputs = [t.requires_grad_() for t in (g, *xs)]
    assert torch.autograd.gradcheck(
        lambda g, *xs: decayed_chunk_products(g.cumsum(-2), xs[:2], xs[2:], reads_before, (0, -1)), inputs)


RWKV7 = next(op for op in OPS if op.name == "rwkv7")


def test_the_products_narrow_to_the_inputs_dtype_only_where_the_floor_bounds_the_chunk_decay():
    assert product_dtype(torch.float32, 16, LOG_DECAY_FLOOR) == torch.float64
    assert product_dtype(torch.float32, 16, -0.6) == torch.float32  # RWKV-7's bound: 16 * 0.6 < 40
    assert product_dtype(torch.float32, 64, -1.0) == torch.float64  # 64 > 40
    assert product_dtype(torch.float64, 16, -0.6) == torch.float64


@pytest.mark.parametrize("T", [7, 16, 83])
def test_rwkv7_with_a_decay_floor_matches_naive_in_float32_and_clamps_below_it(T: int):
    """The float32 products (floor -0.6, chunks of 16) against the float64 recurrence: outputs, state and
    gradients within the tolerances every chunked form meets. A log-decay below the floor counts as the floor."""
    floor = -0.6
    x = make_inputs(RWKV7, T, seed=8, strongest_decay=2.0)  # some decays below the floor
    clamped = dict(x, g=x["g"].detach().clamp_min(floor).requires_grad_())
    o_ref, state_ref, grads_ref = outputs_and_grads(RWKV7.naive, clamped, torch.float64)
    o, state, grads = outputs_and_grads(RWKV7.chunk, x, torch.float32, log_decay_floor=floor)
    assert o.dtype == torch.float32
    assert rel_rms_error(o, o_ref) < FORWARD_TOL
    assert rel_rms_error(state, state_ref) < FORWARD_TOL
    below = x["g"] < floor  # the clamp passes no gradient to a log-decay below the floor
    assert below.any() and not grads["g"][below].any()
    grads["g"], grads_ref["g"] = grads["g"][~below], grads_ref["g"][~below]
    for name, grad in grads.items():
        assert rel_rms_error(grad, grads_ref[name]) < GRAD_TOL, name


@pytest.mark.parametrize("floor", [-0.6, LOG_DECAY_FLOOR])
def test_rwkv7_is_bit_exactly_causal_whatever_the_floor(floor: float):
    """The products' dtype comes from the floor, never from the values: later tokens cannot change the
    rounding of earlier outputs, even when they carry decays far stronger than the earlier ones."""
    x = make_inputs(RWKV7, 40, seed=9, strongest_decay=0.5)
    with torch.no_grad():
        o, _ = run(RWKV7.chunk, x, torch.float32, log_decay_floor=floor)
        changed = {name: t.clone() for name, t in x.items()}
        for name in ("q", "k", "v", "kappa", "a"):
            changed[name][:, :, 21:] = torch.randn_like(changed[name][:, :, 21:])
        changed["g"][:, :, 21:] = -30.0
        o2, _ = run(RWKV7.chunk, changed, torch.float32, log_decay_floor=floor)
    assert torch.equal(o[:, :, :21], o2[:, :, :21]) and not torch.equal(o[:, :, 21:], o2[:, :, 21:])


def test_a_floor_that_b_does_not_keep_is_refused_rather_than_overflowing_float32():
    """Attack: declare a shallow floor to get the float32 products while b decays far faster. Without the
    check, exp(-b) overflows float32 and the products come back inf or nan."""
    gen = torch.Generator().manual_seed(11)
    C, n = 6, 3
    xs = [torch.randn(2, C, n, generator=gen) for _ in range(4)]
    honest = torch.full((2, C, n), -1.0).cumsum(-2)
    assert all(torch.isfinite(t).all() for t in decayed_chunk_products(honest, xs[:2], xs[2:], (False, True), (0, -1),
                                                                      floor=-1.0))
    lying = torch.full((2, C, n), -20.0).cumsum(-2)  # down to -120, far below 6 x -1
    with pytest.raises(ValueError, match="below 6 steps x the declared floor -1"):
        decayed_chunk_products(lying, xs[:2], xs[2:], (False, True), (0, -1), floor=-1.0)
    outs = decayed_chunk_products(lying.double(), [x.double() for x in xs[:2]], [x.double() for x in xs[2:]],
                                  (False, True), (0, -1), floor=-1.0)  # float64 inputs: float64 products, no bound
    assert all(torch.isfinite(t).all() for t in outs)


def test_rwkv7_chunk_size_is_bounded_by_the_floor():
    x = make_inputs(RWKV7, 70, seed=10, strongest_decay=0.5)
    with torch.no_grad():
        o_ref, _ = run(RWKV7.naive, x, torch.float64)
        o, _ = run(RWKV7.chunk, x, torch.float32, chunk_size=64, log_decay_floor=-0.5)  # 64 * 0.5 <= 640
        assert rel_rms_error(o, o_ref) < FORWARD_TOL
        with pytest.raises(ValueError, match="chunk_size \\* -log_decay_floor <= 640"):
            run(RWKV7.chunk, x, torch.float32, chunk_size=32)  # 32 * 40 > 640 at the default floor
        with pytest.raises(ValueError, match="log_decay_floor < 0"):
            run(RWKV7.chunk, x, torch.float32, log_decay_floor=0.0)


def test_rel_rms_error_is_zero_for_equal_tensors_and_scale_free():
    x = torch.randn(10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert rel_rms_error(x, x) == 0.0
    assert rel_rms_error(1e6 * (x + 1e-3), 1e6 * x) == pytest.approx(rel_rms_error(x + 1e-3, x), rel=1e-9)
    with pytest.raises(ValueError, match="shape mismatch"):
        rel_rms_error(x, x[:5])
