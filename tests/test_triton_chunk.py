"""The chunked Triton kernels (kernels/triton_chunk.py) match the naive loops, forward and every gradient, at
ragged lengths, odd head sizes and any decay, and pass the kernel harness (CPU: Triton's interpreter)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kernels.gla.naive import naive_recurrent_gla
from kernels.harness import CheckConfig, check_kernel
from kernels.harness.scan import scan_kernel
from kernels.linear_attn.naive import naive_recurrent_linear_attn
from kernels.simple_gla.naive import naive_recurrent_simple_gla
from kernels.spec import recurrence_spec
from kernels.triton_chunk import _block_sizes, chunked_recurrence
from kernels.utils import rel_rms_error
from tests.gpu_compile import HAS_CUDA_BACKEND, compile_in_child

NAIVE = {"linear_attn": naive_recurrent_linear_attn, "simple_gla": naive_recurrent_simple_gla,
         "gla": naive_recurrent_gla}
EXACT = 1e-5  # float32 against float32: the kernels are ~2e-7 from the loops
ROOT = Path(__file__).parents[1]

# Every kernel of kernels/triton_chunk.py for every decay, compiled for sm_90 through ptxas (no GPU needed),
# with bfloat16 q, k, v and o so that the loads' and the output's casts are compiled too.
COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import kernels.triton_chunk as tc

FLAGS = {"chunk_fwd_h_kernel": {"USE_H0": True, "STORE_HT": True}, "chunk_fwd_o_kernel": {},
         "chunk_bwd_dh_kernel": {"USE_DHT": True, "USE_H0": True}, "chunk_bwd_kernel": {}}
for name, flags in FLAGS.items():
    fn = getattr(tc, name)
    names = list(fn.arg_names)
    for decay in (0, 1, 2):
        constexprs = {"BK": 32, "BV": 32, "CHUNK": 16, "DECAY": decay, "FLOOR": -40.0, **flags}
        signature = {n: "constexpr" if n in constexprs else "i32" if n in ("T", "K", "V") else "fp32" if n == "scale"
                     else "*bf16" if n in ("q", "k", "v", "o") else "*fp32" for n in names}
        source = ASTSource(fn, signature, {(names.index(n),): value for n, value in constexprs.items()})
        kernel = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": tc._num_warps(32)})
        assert kernel.asm["cubin"], (name, decay)
        print(name, decay, "compiled")
"""


def ignores_initial_state(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    return chunked_recurrence(q, k, v, g, scale, None, output_final_state)


def draw(op, B, H, T, K, V, initial_state, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, d, generator=gen) for d in (K, K, V))
    g = None
    if op == "simple_gla":
        g = F.logsigmoid(torch.randn(B, H, T, generator=gen) + 2.0)
    elif op == "gla":
        g = F.logsigmoid(torch.randn(B, H, T, K, generator=gen))
    h0 = 0.5 * torch.randn(B, H, K, V, generator=gen) if initial_state else None
    return q, k, v, g, h0


def errors(op, q, k, v, g, h0, final, chunk_size=16, seed=1):
    """Relative RMS error of o, the final state and every gradient, against the naive loop."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {name: x for name, x in zip(("q", "k", "v", "g", "h0"), (q, k, v, g, h0)) if x is not None}
    do = torch.randn(v.shape, generator=gen)
    dht = torch.randn(h0.shape if h0 is not None else (*q.shape[:2], q.shape[-1], v.shape[-1]), generator=gen)

    def run(fn):
        args = {name: x.clone().requires_grad_(True) for name, x in inputs.items()}
        gates = (args["g"],) if "g" in args else ()
        o, ht = fn(args["q"], args["k"], args["v"], *gates, initial_state=args.get("h0"), output_final_state=final)
        assert (ht is not None) == final
        grads = torch.autograd.grad([o] + ([ht] if final else []), list(args.values()), [do] + ([dht] if final else []))
        return {"o": o, **({"ht": ht} if final else {}), **{f"d{n}": gr for n, gr in zip(args, grads)}}

    mine = run(lambda *a, **kw: chunked_recurrence(*a, **kw, chunk_size=chunk_size))
    ref = run(NAIVE[op])
    for name, x in mine.items():
        assert x.dtype == ref[name].dtype and torch.isfinite(x).all(), name
    return {name: rel_rms_error(x, ref[name]) for name, x in mine.items()}


# (B, H, T, K, V, initial state, final state): one token, one short of a chunk, a whole one, one over,
# several chunks; head sizes that are not powers of two (K=20 runs in a masked block of 32).
SHAPES = [(1, 1, 1, 16, 16, False, False), (1, 2, 15, 20, 12, True, True), (1, 1, 16, 8, 32, True, False),
          (2, 1, 17, 20, 12, False, True), (1, 1, 37, 20, 12, True, True)]


@pytest.mark.parametrize("op", sorted(NAIVE))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}H{}T{}K{}V{}-h0{:d}-ht{:d}".format(*s))
def test_forward_and_every_gradient_match_the_naive_loop(op, shape):
    *dims, h0, final = shape
    errs = errors(op, *draw(op, *dims, h0), final)
    expected = {"o", "dq", "dk", "dv"} | ({"ht"} if final else set()) | ({"dh0"} if h0 else set())
    assert expected | ({"dg"} if op != "linear_attn" else set()) == set(errs)
    assert max(errs.values()) < EXACT, errs


@pytest.mark.parametrize("op", ["simple_gla", "gla"])
def test_strong_decay_stays_exact_in_every_gradient(op):
    # e^-30 per step: 16-step factorizations e^{-b} would reach e^480, and the usual dg as a reverse cumsum
    # of q dq - k dk would be O(1) rounding against a true dg of O(e^-30).
    q, k, v, g, h0 = draw(op, 1, 2, 37, 20, 12, True)
    errs = errors(op, q, k, v, torch.full_like(g, -30.0), h0, True)
    assert max(errs.values()) < EXACT, errs


def test_mixed_decays_and_a_larger_chunk_with_several_value_blocks():
    q, k, v, g, h0 = draw("gla", 1, 1, 40, 12, 70, True)  # V = 70: two value blocks of 64
    g = g.clone()
    g[..., ::7, :] = -30.0  # hard forgetting inside chunks, weak decay between
    errs = errors("gla", q, k, v, g, h0, True, chunk_size=32)
    assert max(errs.values()) < 2e-5, errs


def test_a_hard_reset_is_finite_and_gives_no_gradient_below_the_floor():
    q, k, v, g, _ = draw("simple_gla", 1, 1, 20, 16, 16, False)
    g = g.clone()
    g[..., 5] = float("-inf")
    g[..., 9] = -100.0
    g.requires_grad_(True)
    o, _ = chunked_recurrence(q, k, v, g)
    assert rel_rms_error(o, naive_recurrent_simple_gla(q, k, v, g.detach())[0]) < EXACT
    o.backward(torch.randn_like(o))
    assert torch.isfinite(g.grad).all()
    assert g.grad[..., 5].abs().max() == 0 and g.grad[..., 9].abs().max() == 0
    assert g.grad[..., 6].abs().max() > 0


def test_outputs_and_gradients_keep_the_input_dtype():
    q, k, v, _, _ = draw("linear_attn", 1, 1, 17, 16, 16, False)
    q, k, v = (x.half().requires_grad_(True) for x in (q, k, v))
    o, ht = chunked_recurrence(q, k, v, output_final_state=True)
    assert o.dtype == torch.float16 and ht.dtype == torch.float32
    o.float().square().sum().backward()
    assert q.grad.dtype == k.grad.dtype == v.grad.dtype == torch.float16
    assert rel_rms_error(o, naive_recurrent_linear_attn(q, k, v)[0]) < 1e-3


def test_the_harness_catches_a_kernel_that_drops_the_initial_state():
    spec = recurrence_spec("simple_gla", ignores_initial_state)
    report = check_kernel(spec, hidden_seed=5, config=CheckConfig(hidden=0, edges=False))
    assert report.status == "mismatch" and "relative" in report.reason


@pytest.mark.skipif(not HAS_CUDA_BACKEND, reason="this triton build has no CUDA backend")
def test_every_kernel_compiles_for_a_hopper_gpu(tmp_path):
    assert compile_in_child(COMPILE_FOR_HOPPER, tmp_path).count("compiled") == 12


def test_host_code_passes_the_static_scan():
    source = (ROOT / "kernels" / "triton_chunk.py").read_text()
    assert scan_kernel(source, ["chunked_recurrence"]) == []


def test_every_block_is_a_power_of_two_of_at_least_16():
    for K, V in [(1, 1), (3, 24), (20, 12), (16, 16), (100, 200)]:
        BK, BV = _block_sizes(K, V)
        assert BK >= max(16, K) and BV >= 16
        assert BK & (BK - 1) == 0 and BV & (BV - 1) == 0


def test_bad_inputs_raise_named_errors():
    q = torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match="g must be"):
        chunked_recurrence(q, q, q, torch.zeros(1, 2, 5, 3))
    with pytest.raises(ValueError, match="initial_state must be"):
        chunked_recurrence(q, q, q, initial_state=torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="expected q, k"):
        chunked_recurrence(q, q[..., :3], q)
    for chunk_size in (0, 8, 24):
        with pytest.raises(ValueError, match="chunk_size must be a power of two >= 16"):
            chunked_recurrence(q, q, q, chunk_size=chunk_size)
